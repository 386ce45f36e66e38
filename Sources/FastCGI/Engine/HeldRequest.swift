import FastCGIWire

/// A request whose params arrived, held by its connection until it can run
/// without waiting on the network. For a blocking handler (at every level:
/// ``RequestExecutor/gathersBody(for:)``), until its whole body is in — the
/// first ``RequestLimits/bodyMemory`` bytes in memory, more while the engine's
/// ``RequestLimits/sharedBodyMemory`` lasts, the rest in an unnamed spill
/// file, as nginx buffers a request body — or
/// ``RequestLimits/maxGatheredBody`` arrived; so an upload stalled at any
/// size takes no worker and no thread, handlers only compute, and the request
/// then runs on its connection's serving thread with no hand-off per chunk.
/// For an async handler (which streams its body holding no thread), until its
/// input is complete or ``threshold`` bytes arrived. A filter's stdin and data
/// are held to ``threshold`` at every level. A stalled held request is ended by
/// ``ConnectionLimits/inputTimeout`` like any other, with no thread waiting on it.
///
/// The usual request (BEGIN, PARAMS and STDIN in one read) is complete at its
/// first ``commit(onServingThread:)``: it starts there, with its input, exactly
/// as it would have without the hold.
///
/// Threads: `stdin`, `data` and `commit` come from the connection's serving
/// thread (or its poller at level 2), one at a time; `abort` and `timeOut` from
/// any thread. The lock covers the hold and the hand-over to the executor's sink.
final class HeldRequest: RequestSink, @unchecked Sendable {
    /// Input held at most before the request starts anyway (a handler can then
    /// read it, and what follows flows under the executor's own bounds): one
    /// record's worth, so 10,000 connections hold 640 MiB at the very most.
    static let threshold = 64 << 10

    private let start: RequestStart
    private let connection: Connection

    private enum Phase {
        /// Holding input.
        case held
        /// The executor is starting it (outside the lock); input and an early end
        /// that come meanwhile are passed on once it has a sink.
        case starting(pendingEnd: EarlyEnd?)
        /// Input goes to the executor's sink.
        case started(any RequestSink)
        /// Ended before it started.
        case ended
    }

    private enum EarlyEnd {
        case abort
        case timeOut(Expiry)
    }

    private struct Hold {
        var phase = Phase.held
        var input: [(stdin: Bool, bytes: [UInt8])] = []
        var bytes = 0
        var stdinEnded = false
        var dataEnded: Bool
        /// The body gathered so far (gathering only).
        var body: SpillBuffer
        /// The body is gathered (the executor asks for it, not a filter, and the
        /// spill file could be written).
        var gathering: Bool
    }

    private let hold: Guarded<Hold>

    private let maxGathered: Int

    init(start: RequestStart, connection: Connection) {
        self.start = start
        self.connection = connection
        let limits = connection.engine.server.limits
        maxGathered = limits.maxGatheredBody
        hold = Guarded(
            Hold(
                dataEnded: start.role != .filter,
                body: SpillBuffer(
                    memoryLimit: limits.bodyMemory, directory: limits.temporaryDirectory,
                    shared: connection.engine.bodyMemory),
                gathering: connection.engine.executor.gathersBody(for: start.role) && start.role != .filter))
    }

    func stdin(_ bytes: [UInt8]) { received(bytes, stdin: true) }
    func data(_ bytes: [UInt8]) { received(bytes, stdin: false) }

    private func received(_ bytes: [UInt8], stdin: Bool) {
        let sink = hold.withLock { h -> (any RequestSink)? in
            switch h.phase {
            case .started(let sink): return sink
            case .ended: return nil
            case .held, .starting:
                if bytes.isEmpty {
                    if stdin { h.stdinEnded = true } else { h.dataEnded = true }
                }
                if case .held = h.phase, h.gathering, stdin {
                    if bytes.isEmpty { return nil }
                    if let error = h.body.appendResult(bytes) {
                        // No room for the spill file: the request starts with what
                        // it has and streams the rest.
                        connection.logger.error("cannot gather a request body: \(error); streaming it")
                        h.gathering = false
                    } else {
                        return nil
                    }
                }
                h.input.append((stdin, bytes))
                h.bytes += bytes.count
                return nil
            }
        }
        guard let sink else { return }
        if stdin { sink.stdin(bytes) } else { sink.data(bytes) }
    }

    func commit(onServingThread: Bool) {
        enum Next {
            case nothing
            case forward(any RequestSink)
            case start(body: SpillBuffer?, ended: Bool, [(stdin: Bool, bytes: [UInt8])])
        }
        let maxGathered = maxGathered
        let next = hold.withLock { h -> Next in
            switch h.phase {
            case .started(let sink): return .forward(sink)
            case .ended, .starting: return .nothing
            case .held:
                let complete = h.stdinEnded && h.dataEnded
                guard complete || (h.gathering ? h.body.count >= maxGathered : h.bytes >= Self.threshold) else {
                    return .nothing
                }
                h.phase = .starting(pendingEnd: nil)
                defer { h.input = [] }
                // The gathered body goes first, then its end (or what could not be
                // gathered after it), in order.
                let body = h.body.isEmpty ? nil : h.body
                if body != nil { h.body = SpillBuffer(memoryLimit: 0, directory: h.body.directory) }
                return .start(body: body, ended: h.gathering && h.stdinEnded, h.input)
            }
        }
        switch next {
        case .nothing:
            return
        case .forward(let sink):
            sink.commit(onServingThread: onServingThread)
        case .start(let body, let ended, let input):
            // May wait for a free libfcgi worker: the connection's input waits with it.
            let sink = connection.engine.executor.start(start, on: connection)
            connection.watchStarted(start, sink: self)
            if let body { sink.gatheredStdin(body) }
            if ended { sink.stdin([]) }
            for (stdin, bytes) in input {
                if stdin { sink.stdin(bytes) } else { sink.data(bytes) }
            }
            // Input that came while the executor started it follows, in order.
            let (pendingEnd, late) = hold.withLock { h -> (EarlyEnd?, [(stdin: Bool, bytes: [UInt8])]) in
                guard case .starting(let pendingEnd) = h.phase else { return (nil, []) }
                h.phase = .started(sink)
                defer { h.input = [] }
                return (pendingEnd, h.input)
            }
            for (stdin, bytes) in late {
                if stdin { sink.stdin(bytes) } else { sink.data(bytes) }
            }
            sink.commit(onServingThread: onServingThread && pendingEnd == nil)
            switch pendingEnd {
            case .abort: sink.abort()
            case .timeOut(let expiry): sink.timeOut(expiry)
            case nil: break
            }
        }
    }

    func abort() { end(.abort) }
    func timeOut(_ expiry: Expiry) { end(.timeOut(expiry)) }

    private func end(_ how: EarlyEnd) {
        enum Next {
            case nothing
            case forward(any RequestSink)
            case endHere
        }
        let next = hold.withLock { h -> Next in
            switch h.phase {
            case .started(let sink): return .forward(sink)
            case .ended, .starting(pendingEnd: .some): return .nothing
            case .starting(pendingEnd: nil):
                h.phase = .starting(pendingEnd: how)
                return .nothing
            case .held:
                h.phase = .ended
                h.input = []
                return .endHere
            }
        }
        switch (next, how) {
        case (.nothing, _):
            return
        case (.forward(let sink), .abort):
            sink.abort()
        case (.forward(let sink), .timeOut(let expiry)):
            sink.timeOut(expiry)
        case (.endHere, _):
            // Never started: no handler ran, nothing was sent. The web server gets
            // the timeout's page (an abort asked for nothing) and END_REQUEST.
            let id = start.requestID
            var end: [UInt8] = []
            if case .timeOut(let expiry) = how { end = TimeoutPage.records(requestID: id, expiry: expiry) }
            StreamWriter.appendRequestEnd(requestID: id, stderrUsed: false, into: &end)
            connection.endRequest(id, endRecords: end)
        }
    }
}
