import FastCGIWire

/// One request on the Swift engine (threading level 2, and async handlers at any
/// level): input queued by the connection thread, output written as records to
/// the connection.
///
/// A handler reads its input blocking (``read(_:max:)``, on its own thread) or
/// suspending (``readAsync(_:max:)``, an async handler's task: no thread waits).
/// A request alone on its connection is read no further than ``pauseAt`` bytes
/// ahead of its handler: the serving thread waits (and so the web server,
/// through TCP) until the handler takes some, returns or the request ends.
final class SwiftTransport: RequestTransport, RequestSink, @unchecked Sendable {
    let requestID: Int
    let role: Role
    let environment: CGIEnvironment
    private let id: UInt16
    private let connection: Connection
    private let maxBuffered: Int
    /// Runs the handler: on the calling (serving) thread when `here`, else on a
    /// pool thread.
    private let launch: @Sendable (SwiftTransport, _ here: Bool) -> Void
    private let mayRunInline: Bool

    private struct Input {
        /// The body gathered before the request started (a blocking handler's):
        /// read first, from memory and the spill file.
        var gathered: SpillBuffer?
        var stdin: [[UInt8]] = []
        var data: [[UInt8]] = []
        var dataEnded = false
        var buffered = 0
        var aborted = false
        /// Why reads of a stream cut short by the early end fail (nil: they end).
        var stdinFailure: RequestError?
        var dataFailure: RequestError?
        /// The handler was started (by the first ``commit(onServingThread:)``).
        var launched = false
        /// The handler's output and the request's end (held until
        /// ``SwiftTransport/outputBufferSize`` bytes wait, a flush, or the end).
        var output: RequestOutputMachine
        /// An async handler suspended in ``readAsync(_:max:)`` until input comes.
        var reader: CheckedContinuation<Void, Never>?
        /// Cancels an async handler's task when the request ends early.
        var cancel: (@Sendable () -> Void)?
        /// The handler called `Request.finish()` and goes on.
        var finishedEarly = false

        /// The output machine keeps the one record of stdin's end: its hold
        /// depends on it.
        var stdinEnded: Bool { output.stdinEnded }
        var ended: Bool { output.phase == .ended }

        func isReadable(_ kind: InputKind) -> Bool {
            aborted || (kind == .stdin ? (gathered != nil || !stdin.isEmpty || stdinEnded) : (!data.isEmpty || dataEnded))
        }

        /// What a read of `kind` returns now (`isReadable` holds).
        mutating func take(_ kind: InputKind, max: Int) -> Result<[UInt8], RequestError> {
            if aborted {
                if let failure = kind == .stdin ? stdinFailure : dataFailure { return .failure(failure) }
                return .success([])
            }
            if kind == .stdin, gathered != nil, let taken = takeGathered(max: max) { return taken }
            if kind == .stdin { return .success(SwiftTransport.take(&stdin, max: max, buffered: &buffered)) }
            return .success(SwiftTransport.take(&data, max: max, buffered: &buffered))
        }

        /// The next bytes of the gathered body (a local read: memory or the spill
        /// file's pages); nil once it is all taken.
        private mutating func takeGathered(max: Int) -> Result<[UInt8], RequestError>? {
            let count = Swift.min(max, gathered!.count)
            guard count > 0 else {
                gathered = nil
                return nil
            }
            var chunk = [UInt8](repeating: 0, count: count)
            var filled = 0
            while filled < count {
                let read = chunk.withUnsafeMutableBytes {
                    gathered!.takeResult(into: UnsafeMutableRawBufferPointer(rebasing: $0[filled...]))
                }
                guard case .success(let n) = read, n > 0 else {
                    gathered = nil
                    let reason = if case .failure(let error) = read { ": \(error)" } else { "" }
                    return .failure(
                        RequestError(
                            "request \(output.requestID): the gathered body could not be read back\(reason)",
                            cause: .aborted))
                }
                filled += n
            }
            return .success(chunk)
        }
    }

    /// Input held for a handler alone on its connection before the serving
    /// thread waits for it to read (as libfcgi's levels hold).
    static let pauseAt = LibFCGIWorker.maxQueuedStdin

    /// How much output is held before it is written (libfcgi holds 8 KiB).
    static let outputBufferSize = 16 << 10

    private let input: Guarded<Input>
    /// Serializes this request's output with its end: output is taken from the
    /// machine and written under this lock (then `input`'s, briefly, inside it),
    /// so it reaches the peer in the order taken and before END_REQUEST (a record
    /// after END_REQUEST could be read as the next request's with the same id).
    /// (Its value is unused: with a zero-sized value ThreadSanitizer took the
    /// lock object's own header for the guarded variable, and reported a race.)
    private let sending = Guarded(0)

    init(
        start: RequestStart, connection: Connection, limits: RequestLimits, mayRunInline: Bool,
        launch: @escaping @Sendable (SwiftTransport, _ here: Bool) -> Void
    ) {
        self.launch = launch
        self.mayRunInline = mayRunInline
        id = start.requestID
        requestID = Int(start.requestID)
        role = start.role
        environment = CGIEnvironment(request: start)
        self.connection = connection
        maxBuffered = limits.maxBufferedStdin
        var state = Input(
            output: RequestOutputMachine(
                requestID: start.requestID, batchSize: Self.outputBufferSize,
                maxHeldBeforeBodyEnd: limits.maxOutputBeforeBodyEnd))
        state.dataEnded = start.role != .filter
        input = Guarded(state)
    }

    // MARK: Sink (connection thread)

    /// The end of a batch of input: the first one starts the handler, on this
    /// thread if the input is complete and this is the serving thread (see
    /// ``Connection/runHere(_:orOn:)``); else on a pool thread.
    func commit(onServingThread: Bool) {
        let complete = input.withLock { s -> Bool? in
            guard !s.launched else { return nil }
            s.launched = true
            return s.stdinEnded && s.dataEnded
        }
        guard let complete else { return }
        launch(self, complete && onServingThread && mayRunInline)
    }

    func gatheredStdin(_ body: SpillBuffer) { input.withLock { $0.gathered = body } }

    func stdin(_ bytes: [UInt8]) { enqueue(bytes, stdin: true) }
    func data(_ bytes: [UInt8]) { enqueue(bytes, stdin: false) }

    private func enqueue(_ bytes: [UInt8], stdin: Bool) {
        let (overflow, full, reader) = input.withLock { s -> (Bool, Bool, CheckedContinuation<Void, Never>?) in
            defer { s.reader = nil }
            if bytes.isEmpty {
                if stdin { s.output.stdinDidEnd() } else { s.dataEnded = true }
                return (false, false, s.reader)
            }
            guard !s.aborted else { return (false, false, nil) }
            s.buffered += bytes.count
            if stdin { s.stdin.append(bytes) } else { s.data.append(bytes) }
            return (s.buffered > maxBuffered, s.launched && s.buffered > Self.pauseAt, s.reader)
        }
        reader?.resume()
        if full && !overflow && connection.servesOneRequest && !connection.engine.poller.isCurrentThread {
            // Backpressure: the handler reads slower than the body comes.
            _ = input.wait(until: { $0.buffered <= Self.pauseAt || $0.aborted || $0.ended }) { _ in }
            return
        }
        if overflow {
            connection.engine.statistics.count(.limit)
            connection.logger.warning(
                "request \(id): the handler left more than \(maxBuffered) bytes of input unread; ending the request")
            abort()
        }
    }

    /// Marks the request aborted and ends it now (spec §5.4): the web server gets
    /// its END_REQUEST; whatever the handler writes later is dropped.
    func abort() { endEarly(.aborted, failing: .inputCutShort(requestID: id, by: nil)) }

    /// Past the request timeout or an input stall: ended like an abort, but what
    /// the handler wrote still goes out, or a 504 or 408 page if it wrote nothing.
    func timeOut(_ expiry: Expiry) {
        endEarly(.timedOut(expiry), failing: .inputCutShort(requestID: id, by: expiry))
    }

    private func endEarly(_ ending: RequestOutputMachine.Ending, failing error: RequestError) {
        guard input.withLock({ s in Self.markEnded(&s, failing: error) }) else { return }
        wakeAfterEarlyEnd()
        end(ending)
    }

    /// Marks the request ended early; a stream not at its end yet fails reads
    /// with `error`. False if it already was.
    private static func markEnded(_ s: inout Input, failing error: RequestError) -> Bool {
        guard !s.aborted else { return false }
        s.aborted = true
        if !s.stdinEnded { s.stdinFailure = error }
        if !s.dataEnded { s.dataFailure = error }
        return true
    }

    /// After an early end: a suspended read sees it, an async handler's task is
    /// cancelled.
    private func wakeAfterEarlyEnd() {
        let (reader, cancel) = input.withLock { s in
            defer {
                s.reader = nil
                s.cancel = nil
            }
            return (s.reader, s.cancel)
        }
        reader?.resume()
        cancel?()
    }

    /// Runs `cancel` when the request ends early (an abort, a timeout, the
    /// connection lost), or now if it already did: an async handler sees that as
    /// the cancellation of its task.
    func onEarlyEnd(_ cancel: @escaping @Sendable () -> Void) {
        let already = input.withLock { s in
            if !s.aborted { s.cancel = cancel }
            return s.aborted
        }
        if already { cancel() }
    }

    // MARK: Transport (handler thread)

    var isAborted: Bool { input.withLock { $0.aborted } }

    func read(_ kind: InputKind, max: Int) throws(RequestError) -> [UInt8] {
        let taken = input.wait(until: { $0.isReadable(kind) }) { s in (s.take(kind, max: max), s.output.hasDueFlush) }
        if taken?.1 == true { sendDueFlush() }
        return try taken?.0.get() ?? []
    }

    /// The async handler's read: suspends its task, holding no thread, until
    /// input comes, the stream ends or the request ends early.
    func readAsync(_ kind: InputKind, max: Int) async throws(RequestError) -> [UInt8] {
        while true {
            let ready = input.withLock { s in s.isReadable(kind) ? (s.take(kind, max: max), s.output.hasDueFlush) : nil }
            if let ready {
                if ready.1 { sendDueFlush() }
                return try ready.0.get()
            }
            await withCheckedContinuation { (reader: CheckedContinuation<Void, Never>) in
                let now = input.withLock { s in
                    if !s.isReadable(kind) { s.reader = reader }
                    return s.isReadable(kind)
                }
                if now { reader.resume() }
            }
        }
    }

    private static func take(_ queue: inout [[UInt8]], max: Int, buffered: inout Int) -> [UInt8] {
        guard !queue.isEmpty else { return [] }
        if queue[0].count <= max {
            buffered -= queue[0].count
            return queue.removeFirst()
        }
        let chunk = Array(queue[0].prefix(max))
        queue[0].removeFirst(max)
        buffered -= max
        return chunk
    }

    func write(_ bytes: UnsafeRawBufferPointer, toError: Bool) -> Bool {
        output { $0.write(bytes, toError: toError) }
    }

    /// Writes held output now (the handler's thread; output order is its order),
    /// or once stdin has ended if the output is held for it.
    func flush() -> Bool { output { $0.flush() } && !isAborted }

    /// A flush held for the end of stdin, once the handler's read saw that end.
    private func sendDueFlush() { _ = output { .send($0.takeDueFlush()) } }

    /// Takes output from the machine and writes it, in the order taken; false
    /// once the request is over for the handler.
    private func output(_ take: (inout RequestOutputMachine) -> RequestOutputMachine.Action) -> Bool {
        let outcome = sending.withLock { _ -> WriteOutcome? in
            switch input.withLock({ s in s.aborted ? .dropped : take(&s.output) }) {
            case .dropped: return nil
            case .held: return .written
            case .send(let records): return records.isEmpty ? .written : records.withUnsafeBytes { connection.write($0) }
            }
        }
        // Past the queue's bound: wait for the peer to read, outside the locks
        // (an abort or a timeout takes them to end the request meanwhile).
        switch outcome {
        case nil: return false
        case .written: return true
        case .full where connection.waitForRoom(): return true
        case .full, .failed:
            failed()
            return false
        }
    }

    /// Writing to the connection failed: the request is over for the handler.
    private func failed() {
        let error = RequestError("request \(id): the connection to the web server failed", cause: .aborted)
        let first = input.withLock { s in
            s.output.dropFurther()
            return Self.markEnded(&s, failing: error)
        }
        if first { wakeAfterEarlyEnd() }
    }

    /// The handler returned: close the streams and end the request (unless
    /// ``finishEarly()`` did).
    func finish() {
        end(.finished)
        if input.withLock({ $0.finishedEarly }) { connection.engine.backgroundEnded() }
    }

    /// `Request.finish()`: the request ends for the web server now, and the
    /// handler goes on (a drain waits for it). Its input was read to the end.
    func finishEarly() {
        let first = input.withLock { s -> Bool in
            guard !s.aborted, !s.finishedEarly else { return false }
            s.finishedEarly = true
            return true
        }
        guard first else { return }
        connection.engine.backgroundStarted()
        end(.finished)
    }

    private func end(_ ending: RequestOutputMachine.Ending) {
        sending.withLock { _ in
            guard let records = input.withLock({ $0.output.end(ending) }) else { return }
            connection.endRequest(id, endRecords: records)
        }
    }
}
