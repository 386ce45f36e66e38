@testable import FastCGI

/// A request transport over in-memory bytes, for unit tests of `Request` (the
/// end-to-end tests use real processes).
final class MemoryTransport: RequestTransport {
    let environment: CGIEnvironment
    let role: Role
    var requestID: Int { 1 }
    private var stdin: [UInt8]
    private var data: [UInt8]
    /// Every write to stdout, in order (to see what went out when).
    private(set) var writes: [[UInt8]] = []
    private(set) var errors: [UInt8] = []
    private(set) var flushes = 0
    /// Make writes fail, as when the peer has gone.
    var peerGone = false

    init(_ params: [String: String] = [:], stdin: [UInt8] = [], data: [UInt8] = [], role: Role = .responder) {
        environment = CGIEnvironment(params)
        self.stdin = stdin
        self.data = data
        self.role = role
    }

    var output: [UInt8] { writes.flatMap { $0 } }
    var outputText: String { String(decoding: output, as: UTF8.self) }

    func read(_ kind: InputKind, max: Int) throws(RequestError) -> [UInt8] {
        switch kind {
        case .stdin:
            let chunk = Array(stdin.prefix(Swift.min(max, 7)))  // small reads to exercise buffering
            stdin.removeFirst(chunk.count)
            return chunk
        case .data:
            let chunk = Array(data.prefix(max))
            data.removeFirst(chunk.count)
            return chunk
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer, toError: Bool) -> Bool {
        if peerGone { return false }
        if toError { errors += bytes } else { writes.append(Array(bytes)) }
        return true
    }

    func flush() -> Bool {
        flushes += 1
        return !peerGone
    }

    var isAborted: Bool { peerGone }

    /// A `Request` (or subclass) over this transport.
    func request<R: Request>(_ type: R.Type = Request.self, limits: RequestLimits = RequestLimits()) -> R {
        R(Request.Handle(transport: self, limits: limits))
    }
}
