import FastCGIWire

// While the connection's thread runs a handler, the engine's poller reads for it.
extension Connection {
    /// Whether the calling thread is the one serving the connection.
    var isServingThread: Bool { state.withLock { $0.serving?.thread == OSThread.currentID } }

    /// Whether exactly one request is in flight here (level 2 runs it on this
    /// thread when its input is complete).
    var servesOneRequest: Bool { state.withLock { $0.sinks.count == 1 } }

    /// Runs a level-2 handler whose input is complete on this (serving) thread: at
    /// once when its request is alone here; else queued, to run after the batch
    /// of input that started it, one after another (``runQueued()``): a
    /// multiplexed request costs no hand-off to another thread. Handlers still
    /// queued when the one running has held the thread past the poller's patience
    /// go to `pool` (``releaseQueued()``), so a slow one delays the others by a
    /// few milliseconds at most.
    func runHere(_ run: @escaping @Sendable () -> Void, orOn pool: ThreadPool) {
        let alone = state.withLock { s in
            guard s.sinks.count == 1 else {
                s.queued.append(InlineJob(run: run, pool: pool))
                return false
            }
            return true
        }
        if alone { runWatched(run) }
    }

    /// Runs the queued handlers, one after another, watched (serving thread).
    func runQueued() {
        guard state.withLock({ !$0.queued.isEmpty }) else { return }
        runWatched {
            while let job = state.withLock({ s in s.queued.isEmpty ? nil : s.queued.removeFirst() }) { job.run() }
        }
    }

    /// The poller found the serving thread held up by a handler: the queued
    /// ones go to pool threads (poller thread; holds no poller lock).
    func releaseQueued() {
        let jobs = state.withLock { s -> [InlineJob] in
            defer { s.queued = [] }
            return s.queued
        }
        for job in jobs { job.pool.run(job.run) }
    }

    /// Runs `body` — a request's handler, on this connection's thread — while the
    /// engine's poller reads the connection: management records are answered and
    /// an abort ends the request at once, as when this thread reads (SPEC §4).
    func runWatched(_ body: () -> Void) {
        watched.withLock { $0 = true }
        engine.poller.busy(self)
        body()
        watched.withLock { $0 = false }
        engine.poller.idle(self)
    }

    /// The poller's read (poller thread): feeds the machine and carries out what
    /// need not wait for the handler to return — replies, refusals, aborts, a close.
    /// At levels 0/1 anything else (a pipelined request's start, input for a
    /// libfcgi worker, which may block) stays queued, in order, for this
    /// connection's thread; at level 2 nothing blocks, so everything is carried
    /// out (a multiplexed request starts on a pool thread at once).
    func readWhileBusy(into buffer: inout [UInt8], poller: ConnectionPoller) {
        watched.withLock { watching in
            guard watching else { return }
            _ = readAndFeed(&buffer, waiting: false)
            if engine.server.threadingLevel == .multiplexed {
                carryOutPending(onServingThread: false)
            } else {
                carryOutSafeWhileBusy()
            }
            if !state.withLock({ $0.machine.isClosed || $0.machine.readClosed }) { poller.rearm(self) }
        }
    }

    /// Levels 0/1, on the poller: the queued actions that cannot block, up to the
    /// first that must wait for this connection's thread.
    private func carryOutSafeWhileBusy() {
        while let action = state.withLock({ s -> ConnectionAction? in
            guard let first = s.pending.first else { return nil }
            switch first {
            case .send, .refused, .abort, .close:
                s.pending.removeFirst()
                return first
            case .start, .stdin, .data:
                return nil
            }
        }) {
            _ = carryOut(action)
        }
    }
}

/// A handler queued for a connection's serving thread, and the pool it goes to
/// if that thread stays busy.
struct InlineJob {
    let run: @Sendable () -> Void
    let pool: ThreadPool
}
