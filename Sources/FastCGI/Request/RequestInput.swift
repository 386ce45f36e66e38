/// A readable input stream of a request: `stdin` (the body) or `fastcgiData` (the
/// filter role's `FCGI_DATA`).
///
/// Reads block until bytes arrive or the stream ends; an empty result means the end.
/// In an async handler, read with `await`: the `async` forms suspend the handler's
/// task instead, and the stream is an `AsyncSequence` of chunks
/// (`for try await chunk in request.stdin`).
public final class RequestInput {
    private let transport: any RequestTransport
    private let kind: InputKind
    // Read by the handler's thread only: no dynamic exclusivity checks.
    /// Bytes read from the transport but not yet returned (after `readLine`).
    @exclusivity(unchecked) private var pending: [UInt8] = []
    @exclusivity(unchecked) private var pendingStart = 0
    /// Whether the end of the stream was seen.
    @exclusivity(unchecked) public private(set) var atEnd = false

    init(transport: any RequestTransport, kind: InputKind) {
        self.transport = transport
        self.kind = kind
    }

    /// Reads at most `max` bytes (everything to the end if `max` is omitted).
    /// Returns an empty array at the end of the stream.
    public func read(_ max: Int = .max) throws(RequestError) -> [UInt8] {
        if max == .max { return try readAll() }
        guard max > 0 else { return [] }
        if let held = takePending(max) { return held }
        return try fill(max)
    }

    /// Reads the rest of the stream.
    public func readAll() throws(RequestError) -> [UInt8] {
        var out = Array(pending[pendingStart...])
        consumePending(pending.count - pendingStart)
        while true {
            let chunk = try fill(65536)
            if chunk.isEmpty { return out }
            if out.isEmpty { out = chunk } else { out.append(contentsOf: chunk) }
        }
    }

    /// Reads the rest of the stream, at most `limit` bytes; throws if there is more.
    func readAll(limit: Int, what: String) throws(RequestError) -> [UInt8] {
        var out = Array(pending[pendingStart...])
        consumePending(pending.count - pendingStart)
        while true {
            let chunk = try fill(65536)
            if chunk.isEmpty { return out }
            guard out.count + chunk.count <= limit else {
                throw overLimit(limit, what)
            }
            out.append(contentsOf: chunk)
        }
    }

    /// Reads at most `max` bytes, suspending until some arrive; an empty array at
    /// the end of the stream.
    nonisolated(nonsending) public func read(_ max: Int = 65536) async throws(RequestError) -> [UInt8] {
        guard max > 0 else { return [] }
        if let held = takePending(max) { return held }
        guard !atEnd else { return [] }
        let chunk = try await transport.readAsync(kind, max: max)
        if chunk.isEmpty { atEnd = true }
        return chunk
    }

    /// Reads the rest of the stream, suspending while it arrives.
    nonisolated(nonsending) public func readAll() async throws(RequestError) -> [UInt8] {
        try await readAll(limit: .max, what: "the body")
    }

    /// Reads the rest of the stream as text (UTF-8, invalid bytes replaced),
    /// suspending while it arrives.
    nonisolated(nonsending) public func readString() async throws(RequestError) -> String {
        String(decoding: try await readAll(), as: UTF8.self)
    }

    /// ``readAll(limit:what:)``, suspending while the stream arrives.
    nonisolated(nonsending) func readAll(limit: Int, what: String) async throws(RequestError) -> [UInt8] {
        var out: [UInt8] = []
        while true {
            let chunk = try await read(65536)
            if chunk.isEmpty { return out }
            guard out.count + chunk.count <= limit else {
                throw overLimit(limit, what)
            }
            out.append(contentsOf: chunk)
        }
    }

    /// Reads one line including its `\n`; the last line may lack it. Nil at the end.
    public func readLine() throws(RequestError) -> [UInt8]? {
        while true {
            if let nl = pending[pendingStart...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(pending[pendingStart...nl])
                consumePending(nl + 1 - pendingStart)
                return line
            }
            let chunk = try fill(65536)
            if chunk.isEmpty {
                guard pendingStart < pending.count else { return nil }
                let line = Array(pending[pendingStart...])
                consumePending(line.count)
                return line
            }
            pending.append(contentsOf: chunk)
        }
    }

    /// Reads the rest of the stream as text (UTF-8, invalid bytes replaced).
    public func readString() throws(RequestError) -> String {
        String(decoding: try readAll(), as: UTF8.self)
    }

    private func fill(_ max: Int) throws(RequestError) -> [UInt8] {
        guard !atEnd else { return [] }
        let chunk = try transport.read(kind, max: max)
        if chunk.isEmpty { atEnd = true }
        return chunk
    }

    /// Up to `max` bytes kept back by ``readLine()``; nil when none are.
    private func takePending(_ max: Int) -> [UInt8]? {
        guard pendingStart < pending.count else { return nil }
        let n = Swift.min(max, pending.count - pendingStart)
        defer { consumePending(n) }
        return Array(pending[pendingStart..<pendingStart + n])
    }

    private func overLimit(_ limit: Int, _ what: String) -> RequestError {
        RequestError("request \(transport.requestID): \(what) exceeds the \(limit)-byte limit", cause: .limitExceeded)
    }

    private func consumePending(_ n: Int) {
        pendingStart += n
        if pendingStart >= pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingStart = 0
        }
    }
}

extension RequestInput: AsyncSequence {
    public typealias Element = [UInt8]
    public typealias Failure = RequestError

    /// The stream's chunks, as they arrive.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let input: RequestInput

        /// The next chunk; nil at the end of the stream.
        nonisolated(nonsending) public mutating func next() async throws(RequestError) -> [UInt8]? {
            let chunk = try await input.read(65536)
            return chunk.isEmpty ? nil : chunk
        }

        /// The next chunk; nil at the end of the stream.
        public mutating func next(isolation actor: isolated (any Actor)?) async throws(RequestError) -> [UInt8]? {
            try await next()
        }
    }

    /// Iterates the stream's chunks, suspending while they arrive.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(input: self) }
}
