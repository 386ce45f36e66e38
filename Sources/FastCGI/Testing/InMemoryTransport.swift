/// A request transport over a ``TestRequest``'s bytes, collecting the output:
/// what `Server.respond(to:)` runs a handler on.
final class InMemoryTransport: RequestTransport {
    let environment: CGIEnvironment
    let role: Role
    var requestID: Int { 1 }
    var isAborted: Bool { false }
    private var input: [InputKind: ArraySlice<UInt8>]
    private(set) var stdout: [UInt8] = []
    private(set) var stderr: [UInt8] = []

    init(_ request: TestRequest) {
        environment = CGIEnvironment(request.params)
        role = request.role
        input = [.stdin: request.body[...], .data: request.data[...]]
    }

    func read(_ kind: InputKind, max: Int) throws(RequestError) -> [UInt8] {
        let left = input[kind] ?? []
        let chunk = left.prefix(max)
        input[kind] = left.dropFirst(chunk.count)
        return Array(chunk)
    }

    func write(_ bytes: UnsafeRawBufferPointer, toError: Bool) -> Bool {
        if toError { stderr += bytes } else { stdout += bytes }
        return true
    }

    func flush() -> Bool { true }
}

extension Server {
    /// Runs the handler for `request`'s role in memory, on the calling thread, as
    /// the server would serve it (its request type, limits and logger, errors
    /// turned into pages), and returns what it wrote. For an app's tests: no
    /// socket is opened and ``run()`` need not be called.
    ///
    /// ```swift
    /// let server = Server { request in try request.redirect(to: "/done") }
    /// let response = server.respond(to: TestRequest("POST", "/form", body: Array("a=1".utf8)))
    /// assert(response.status == 303 && response.header("Location") == "/done")
    /// ```
    public func respond(to request: TestRequest) -> TestResponse {
        let transport = InMemoryTransport(request)
        serve(transport)
        return TestResponse(stdout: transport.stdout, stderr: transport.stderr)
    }

    /// `respond(to:)` in the calling task: an async handler is awaited there
    /// (the blocking form waits for it on the calling thread, which in a task
    /// would hold one of Swift concurrency's threads).
    public func respond(to request: TestRequest) async -> TestResponse {
        let transport = InMemoryTransport(request)
        await serve(transport, logger: logger)
        return TestResponse(stdout: transport.stdout, stderr: transport.stderr)
    }
}
