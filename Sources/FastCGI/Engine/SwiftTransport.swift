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
    let environment: Environment
    private let id: UInt16
    private let connection: Connection
    private let maxBuffered: Int
    private let maxHeldOutput: Int
    /// Runs the handler: on the calling (serving) thread when `here`, else on a
    /// pool thread.
    private let launch: @Sendable (SwiftTransport, _ here: Bool) -> Void
    private let mayRunInline: Bool

    private struct Input {
        var stdin: [[UInt8]] = []
        var data: [[UInt8]] = []
        var stdinEnded = false
        var dataEnded = false
        var buffered = 0
        var aborted = false
        /// Why reads of a stream cut short by the early end fail (nil: they end).
        var stdinFailure: RequestError?
        var dataFailure: RequestError?
        var ended = false
        var stderrUsed = false
        var stdoutUsed = false
        /// The handler was started (by the first ``commit(onServingThread:)``).
        var launched = false
        /// Output records not yet written: sent on flush, past `outputBufferSize`,
        /// or with END_REQUEST (one write for a small response).
        var output: [UInt8] = []
        /// The handler flushed while the output was held for the body's end: it
        /// goes out once stdin has ended.
        var flushPending = false
        /// An async handler suspended in ``readAsync(_:max:)`` until input comes.
        var reader: CheckedContinuation<Void, Never>?
        /// Cancels an async handler's task when the request ends early.
        var cancel: (@Sendable () -> Void)?

        /// Output waits for the end of stdin (see
        /// ``RequestLimits/maxOutputBeforeBodyEnd``): nginx sends no more of the
        /// body once it has the response's head.
        func holdsOutput(upTo limit: Int) -> Bool { !stdinEnded && output.count < limit }

        func isReadable(_ kind: InputKind) -> Bool {
            aborted || (kind == .stdin ? (!stdin.isEmpty || stdinEnded) : (!data.isEmpty || dataEnded))
        }

        /// What a read of `kind` returns now (`isReadable` holds).
        mutating func take(_ kind: InputKind, max: Int) -> Result<[UInt8], RequestError> {
            if aborted {
                if let failure = kind == .stdin ? stdinFailure : dataFailure { return .failure(failure) }
                return .success([])
            }
            if kind == .stdin { return .success(SwiftTransport.take(&stdin, max: max, buffered: &buffered)) }
            return .success(SwiftTransport.take(&data, max: max, buffered: &buffered))
        }
    }

    /// Input held for a handler alone on its connection before the serving
    /// thread waits for it to read (as libfcgi's levels hold).
    static let pauseAt = LibFCGIWorker.maxQueuedStdin

    /// How much output is held before it is written (libfcgi holds 8 KiB).
    static let outputBufferSize = 16 << 10

    private let input = Guarded(Input())
    /// Serializes this request's writes with its end: output taken for sending
    /// reaches the peer before END_REQUEST or not at all (a record after
    /// END_REQUEST could be read as the next request's with the same id).
    /// True once END_REQUEST is written.
    private let sending = Guarded(false)

    init(
        start: RequestStart, connection: Connection, limits: RequestLimits, mayRunInline: Bool,
        launch: @escaping @Sendable (SwiftTransport, _ here: Bool) -> Void
    ) {
        self.launch = launch
        self.mayRunInline = mayRunInline
        id = start.requestID
        requestID = Int(start.requestID)
        role = start.role
        environment = Environment(request: start)
        self.connection = connection
        maxBuffered = limits.maxBufferedStdin
        maxHeldOutput = limits.maxOutputBeforeBodyEnd
        if start.role != .filter { input.withLock { $0.dataEnded = true } }
    }

    // MARK: Sink (connection thread)

    /// The end of a batch of input: the first one starts the handler, on this
    /// thread if the input is complete, the request alone on its connection, and
    /// this is the serving thread; else on a pool thread.
    func commit(onServingThread: Bool) {
        let complete = input.withLock { s -> Bool? in
            guard !s.launched else { return nil }
            s.launched = true
            return s.stdinEnded && s.dataEnded
        }
        guard let complete else { return }
        launch(self, complete && onServingThread && mayRunInline && connection.servesOneRequest)
    }

    func stdin(_ bytes: [UInt8]) { enqueue(bytes, stdin: true) }
    func data(_ bytes: [UInt8]) { enqueue(bytes, stdin: false) }

    private func enqueue(_ bytes: [UInt8], stdin: Bool) {
        let (overflow, full, reader) = input.withLock { s -> (Bool, Bool, CheckedContinuation<Void, Never>?) in
            defer { s.reader = nil }
            if bytes.isEmpty {
                if stdin { s.stdinEnded = true } else { s.dataEnded = true }
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
    func abort() {
        let first = input.withLock { s in
            Self.markEnded(&s, failing: .inputCutShort(requestID: id, by: nil))
        }
        guard first else { return }
        wakeAfterEarlyEnd()
        end()
    }

    /// Past the request timeout or an input stall: ended like an abort, with a
    /// 504 or 408 page if the handler sent nothing yet.
    func timeOut(_ expiry: Expiry) {
        // Output written before the timeout still goes out; a page only if the
        // handler wrote nothing at all.
        let ending = input.withLock { s -> (held: [UInt8], nothingWritten: Bool)? in
            guard Self.markEnded(&s, failing: .inputCutShort(requestID: id, by: expiry)) else { return nil }
            defer { s.output = [] }
            return (s.output, !s.stdoutUsed)
        }
        guard let ending else { return }
        wakeAfterEarlyEnd()
        end(before: ending.held + (ending.nothingWritten ? TimeoutPage.records(requestID: id, expiry: expiry) : []))
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
        let taken = input.wait(until: { $0.isReadable(kind) }) { s in (s.take(kind, max: max), dueFlush(&s)) }
        if let flushed = taken?.1 { _ = send(flushed) }
        return try taken?.0.get() ?? []
    }

    /// The async handler's read: suspends its task, holding no thread, until
    /// input comes, the stream ends or the request ends early.
    func readAsync(_ kind: InputKind, max: Int) async throws(RequestError) -> [UInt8] {
        while true {
            let ready = input.withLock { s in s.isReadable(kind) ? (s.take(kind, max: max), dueFlush(&s)) : nil }
            if let ready {
                _ = send(ready.1)
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
        var records: [UInt8] = []
        StreamWriter.append(bytes, type: toError ? .stderr : .stdout, requestID: id, close: false, into: &records)
        let (ok, ready) = input.withLock { s -> (Bool, [UInt8]) in
            guard !s.aborted && !s.ended else { return (false, []) }
            if toError { s.stderrUsed = true } else { s.stdoutUsed = true }
            if s.output.isEmpty { s.output = records } else { s.output += records }
            guard !s.holdsOutput(upTo: maxHeldOutput), s.flushPending || s.output.count >= Self.outputBufferSize
            else { return (true, []) }
            return (true, Self.takeOutput(&s))
        }
        guard ok else { return false }
        return send(ready)
    }

    /// Writes held output now (the handler's thread; output order is its order),
    /// or once stdin has ended if the output is held for it.
    func flush() -> Bool {
        let ready = input.withLock { s -> [UInt8] in
            guard !s.aborted else { return [] }
            if s.holdsOutput(upTo: maxHeldOutput) {
                s.flushPending = !s.output.isEmpty
                return []
            }
            return Self.takeOutput(&s)
        }
        return send(ready) && !isAborted
    }

    /// A flush held for the end of stdin, once it came: taken with a read, under
    /// the same lock, and sent by the handler's thread (so in its order).
    private func dueFlush(_ s: inout Input) -> [UInt8] {
        guard s.flushPending, !s.aborted, !s.holdsOutput(upTo: maxHeldOutput) else { return [] }
        return Self.takeOutput(&s)
    }

    private static func takeOutput(_ s: inout Input) -> [UInt8] {
        defer {
            s.output = []
            s.flushPending = false
        }
        return s.output
    }

    private func send(_ records: [UInt8]) -> Bool {
        guard !records.isEmpty else { return true }
        let written = sending.withLock { ended in
            !ended && records.withUnsafeBytes { connection.write($0) }
        }
        if !written {
            let error = RequestError("request \(id): the connection to the web server failed", cause: .aborted)
            if input.withLock({ s in Self.markEnded(&s, failing: error) }) { wakeAfterEarlyEnd() }
        }
        return written
    }

    /// The handler returned: close the streams and end the request.
    func finish() { end() }

    private func end(before: [UInt8] = []) {
        let (first, stderrUsed, held) = input.withLock { s -> (Bool, Bool, [UInt8]) in
            defer {
                s.ended = true
                s.output = []
            }
            // Output held when the request was aborted or timed out is dropped.
            return (!s.ended, s.stderrUsed, s.aborted ? [] : s.output)
        }
        guard first else { return }
        var out = held + before
        StreamWriter.appendRequestEnd(requestID: id, stderrUsed: stderrUsed, into: &out)
        sending.withLock { ended in
            ended = true
            connection.endRequest(id, endRecords: out)
        }
    }
}
