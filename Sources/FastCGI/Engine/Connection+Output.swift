// A connection's output: every write to the peer goes through the outbox, which
// sends what the socket takes now and queues the rest for the engine's
// ``OutputFlusher``. No thread ever blocks in `send`: a handler's thread only
// waits when more than ``RequestLimits/maxQueuedOutput`` is queued, and the
// send timeout ends even that wait.

/// What a connection has not sent yet, and whether it may still send (under
/// ``Connection/outbox``).
struct Outbox {
    var side = SendSide.open
    /// Bytes written but not yet taken by the peer, in order.
    var queued: SpillBuffer
    /// When the peer last took bytes of a non-empty queue (or the queue began).
    var lastProgress = 0.0
    /// The connection closes once the queue is sent (a shutdown asked for while
    /// output waited: END_REQUEST must not be cut off).
    var closeWhenSent = false
    /// In the flusher's set (set by whoever queues first, cleared by the flusher).
    var watched = false

    /// Sends `bytes` now as far as the socket takes them, queues the rest;
    /// returns whether the flusher must now watch the connection. `clock`
    /// dates a queue that begins (the send timeout counts from there). With
    /// `last`, a shutdown follows at once: TCP sends the tail with the FIN.
    mutating func send(
        _ bytes: UnsafeRawBufferPointer, on descriptor: FileDescriptor, last: Bool = false,
        clock: () -> Double = { MonotonicClock.seconds() }
    ) -> Bool {
        guard side == .open, !bytes.isEmpty else { return false }
        var sent = 0
        if queued.isEmpty {
            switch descriptor.sendNow(bytes, more: last) {
            case .success(let n): sent = n
            case .failure(let error) where error.wouldBlock: break
            case .failure:
                side = .failed
                return false
            }
            if sent == bytes.count { return false }
            lastProgress = clock()
        }
        do {
            try queued.append(UnsafeRawBufferPointer(rebasing: bytes[sent...]) as UnsafeRawBufferPointer)
        } catch {
            // The spill file cannot grow (a full disk): the peer would see output
            // with a hole in it, so it sees the connection end instead.
            fail(descriptor)
            return false
        }
        defer { watched = true }
        return !watched
    }

    /// What ``flush(on:staging:now:)`` left.
    enum FlushOutcome {
        /// Output still waits for room in the socket.
        case pending
        /// Nothing is queued (sent, or dropped with a failed connection).
        case done
    }

    /// Sends what is queued until the socket is full or the queue is empty
    /// (the flusher's thread); `now` is when the peer took any bytes.
    mutating func flush(on descriptor: FileDescriptor, staging: inout [UInt8], now: Double) -> FlushOutcome {
        while side == .open && !queued.isEmpty {
            var blocked = false
            do {
                let sent = try queued.withFront(staging: &staging) { bytes in
                    switch descriptor.sendNow(bytes, more: closeWhenSent) {
                    case .success(let n): return n
                    case .failure(let error):
                        blocked = error.wouldBlock
                        return 0
                    }
                }
                // Nothing sent and no room to wait for: the peer is gone.
                if sent > 0 { lastProgress = now } else if !blocked { side = .failed }
            } catch {
                fail(descriptor)
            }
            if blocked { return .pending }
        }
        queued.removeAll()
        watched = false
        if closeWhenSent { side.shutDown(descriptor) }
        return .done
    }

    /// Ends the connection if the peer took nothing of its queue for `timeout`
    /// seconds before `now`; true when it did.
    mutating func endIfTimedOut(on descriptor: FileDescriptor, now: Double, timeout: Double) -> Bool {
        guard side == .open, !queued.isEmpty, now - lastProgress >= timeout else { return false }
        fail(descriptor)
        watched = false
        return true
    }

    /// Nothing more is sent: the queue is dropped and the peer sees the end.
    mutating func fail(_ descriptor: FileDescriptor) {
        queued.removeAll()
        side = .failed
        descriptor.shutdown(.readWrite)
    }
}

/// What a write to the connection came to.
enum WriteOutcome {
    /// Sent, or queued within the bound.
    case written
    /// Queued past ``RequestLimits/maxQueuedOutput``: the writer waits for room
    /// (``Connection/waitForRoom()``) before it writes more.
    case full
    /// The connection is closed or failed: nothing was written.
    case failed
}

extension Connection: FlushTarget {
    /// Writes bytes to the peer, in order with every other writer, without
    /// waiting: what the socket does not take now is queued for the flusher.
    func write(_ bytes: UnsafeRawBufferPointer) -> WriteOutcome {
        let bound = engine.server.limits.maxQueuedOutput
        let (outcome, watch) = outbox.withLock { o -> (WriteOutcome, Bool) in
            let watch = o.send(bytes, on: descriptor)
            return (o.side != .open ? .failed : o.queued.count > bound ? .full : .written, watch)
        }
        if watch { engine.flusher.watch(self) }
        return outcome
    }

    /// Waits (a handler's thread, holding no lock) until the queue is back
    /// within its bound; false once the connection failed — the peer went away,
    /// or took nothing for the send timeout.
    func waitForRoom() -> Bool {
        let bound = engine.server.limits.maxQueuedOutput
        return outbox.wait(until: { $0.queued.count <= bound || $0.side != .open }) { $0.side == .open } ?? false
    }

    /// Shuts the socket down once no writer is in the middle of a write and what
    /// was written is sent: a request that just ended holds the outbox from
    /// telling the machine until its END_REQUEST is queued, and that END_REQUEST
    /// must not be cut off.
    func shutdownAfterWriters() {
        outbox.withLock { o in
            if o.queued.isEmpty || o.side != .open {
                o.side.shutDown(descriptor)
            } else {
                o.closeWhenSent = true
            }
        }
    }

    /// Sends what is queued until the socket is full (the flusher's thread).
    func flushQueued(staging: inout [UInt8], now: Double) -> Outbox.FlushOutcome {
        outbox.withLock { $0.flush(on: descriptor, staging: &staging, now: now) }
    }

    func sendTimedOut(after seconds: Double) {
        logger.warning(
            "the peer took no output for the send timeout (\(seconds) s); closing the connection",
            metadata: ["peer": "\(peer)"])
    }

    /// Whether output still waits for the flusher (read under its lock).
    var outputWatched: Bool { outbox.withLock { $0.watched } }

    /// Ends the connection if the peer took nothing of its queue for `timeout`
    /// seconds: the queue is dropped and the socket shut down, so the serving
    /// thread (or the poller) sees it end and its requests are aborted. True
    /// when it did.
    func endIfSendTimedOut(now: Double, timeout: Double) -> Bool {
        outbox.withLock { $0.endIfTimedOut(on: descriptor, now: now, timeout: timeout) }
    }
}
