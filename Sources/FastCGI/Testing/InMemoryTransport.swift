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
    ///
    /// With an async handler, call it from a thread that runs no task (an
    /// XCTest method, a thread of your own): that thread then runs the
    /// handler's task itself. Called from a task — a Swift Testing test, even
    /// a non-async one, runs in one — it refuses at once with a 500 whose
    /// error stream says to `await` it: waiting there would hold one of Swift
    /// concurrency's few threads while the handler's timers and continuations
    /// need one, and tests run in parallel can hold them all (a hung suite).
    public func respond(to request: TestRequest) -> TestResponse {
        if handler(for: request.role)?.isAsync == true, Self.isInTask {
            let reason =
                "Server.respond(to:) was called from a task with an async handler: use `await server.respond(to:)` "
                + "(blocking here could hold every one of Swift concurrency's threads)\n"
            logger.error("\(reason)")
            return TestResponse(
                stdout: Array("Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n".utf8) + Array(reason.utf8),
                stderr: Array(reason.utf8))
        }
        let transport = InMemoryTransport(request)
        serve(transport)
        return TestResponse(stdout: transport.stdout, stderr: transport.stderr)
    }

    /// Whether the calling thread is running a task (synchronous code called
    /// from async code included).
    static var isInTask: Bool { withUnsafeCurrentTask { $0 != nil } }

    /// `respond(to:)` in the calling task: an async handler is awaited there
    /// (the blocking form waits for it on the calling thread, which in a task
    /// would hold one of Swift concurrency's threads).
    public func respond(to request: TestRequest) async -> TestResponse {
        let transport = InMemoryTransport(request)
        await serve(transport)
        return TestResponse(stdout: transport.stdout, stderr: transport.stderr)
    }
}
