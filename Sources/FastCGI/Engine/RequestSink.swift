import FastCGIWire

/// Where a started request's input goes: the Swift engine's transport (level 2) or a
/// libfcgi worker (levels 0 and 1).
protocol RequestSink: AnyObject, Sendable {
    /// Body bytes; empty at the end of the stream.
    func stdin(_ bytes: [UInt8])
    /// Filter data bytes; empty at the end of the stream.
    func data(_ bytes: [UInt8])
    /// The body gathered before the request started (levels 0 and 1): the
    /// first stdin bytes, in memory and a spill file; its end, if it came, follows
    /// as an empty ``stdin(_:)``.
    func gatheredStdin(_ body: SpillBuffer)
    /// The web server aborted the request or went away.
    func abort()
    /// The request ran past its timeout (`.request`), or its input stalled
    /// (`.input`): end it like ``abort()``, with a `504 Gateway Timeout` or
    /// `408 Request Timeout` response if nothing was sent yet; a handler still
    /// reading its input sees the read fail (``RequestError/Cause/inputStalled``).
    func timeOut(_ expiry: Expiry)
    /// Sends what the calls above queued (one write per batch of input). The first
    /// commit starts the request; `onServingThread` says whether it may run on the
    /// calling thread (the connection's serving thread, not the poller).
    func commit(onServingThread: Bool)
}

extension RequestSink {
    func commit(onServingThread: Bool) {}
    /// Passes the gathered body on as ``stdin(_:)`` chunks.
    func gatheredStdin(_ body: SpillBuffer) {
        var body = body
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let taken = chunk.withUnsafeMutableBytes { body.takeResult(into: $0) }
            guard case .success(let count) = taken, count > 0 else { return }
            stdin(Array(chunk[..<count]))
        }
    }
    func timeOut(_ expiry: Expiry) { abort() }
}

/// Which timeout ended a request.
enum Expiry: Sendable {
    /// ``Monitoring/requestTimeout``: the request ran too long.
    case request
    /// ``ConnectionLimits/inputTimeout``: its stdin (or data) stopped arriving.
    case input
}

extension RequestError {
    /// What a handler's read throws once an early end cut its input short: an
    /// abort (`expiry` nil), the request timeout or an input stall. The one
    /// wording for both engines.
    static func inputCutShort(requestID: UInt16, by expiry: Expiry?) -> RequestError {
        let (cause, reason): (Cause, String) =
            switch expiry {
            case .input: (.inputStalled, "no input came for the input timeout; the request was ended")
            case .request: (.aborted, "the request timed out before its input ended")
            case nil: (.aborted, "the web server aborted the request before its input ended")
            }
        return RequestError("request \(requestID): \(reason)", cause: cause)
    }
}

/// Runs started requests: the Swift engine or the libfcgi worker pool.
protocol RequestExecutor: Sendable {
    /// Starts `request` on `connection`; returns where its input goes.
    func start(_ request: RequestStart, on connection: Connection) -> any RequestSink
    /// Stops the executor's threads when the server stops.
    func shutdown()
    /// Handler threads running a request, and idle ones (for the status page).
    var workerCounts: (busy: Int, idle: Int) { get }
    /// Whether the body of a request for `role` is gathered before it starts:
    /// its handler's thread then never waits on the network for input (every
    /// blocking handler; an async one awaits its body holding no thread).
    func gathersBody(for role: Role) -> Bool
}

/// A request the connection answered itself (ping, status): its input is ignored.
final class AnsweredRequest: RequestSink {
    func stdin(_ bytes: [UInt8]) {}
    func data(_ bytes: [UInt8]) {}
    func abort() {}
}
