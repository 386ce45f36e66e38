import FastCGI
import Foundation
import InMemoryTracing
import NIOCore
import Testing
import Tracing
import Vapor
import VaporFastCGI

/// The adapter in memory: a FastCGI request as nginx sends it, through a Vapor
/// application's responder, back as a FastCGI response (`Server.respond(to:)`).
@Suite("Vapor over FastCGI, in memory")
struct AdapterTests {
    struct Teapot: Error {}

    struct Todo: Content, Equatable {
        var id: Int?
        var title: String
    }

    /// The JSON body of ErrorMiddleware's responses.
    struct ErrorBody: Decodable, Equatable {
        var error: Bool
        var reason: String

        init(error: Bool, reason: String) {
            self.error = error
            self.reason = reason
        }

        /// The error in `response`'s body; nil when it is not one.
        init?(_ response: FastCGI.TestResponse) {
            guard let body = try? JSONDecoder().decode(Self.self, from: Data(response.body)) else { return nil }
            self = body
        }
    }

    /// Adds `X-Middleware: seen` to every response.
    struct Stamp: AsyncMiddleware {
        func respond(to request: Vapor.Request, chainingTo next: any AsyncResponder) async throws -> Vapor.Response {
            let response = try await next.respond(to: request)
            response.headers.replaceOrAdd(name: "X-Middleware", value: "seen")
            return response
        }
    }

    /// The routes under test, as an app's `configure` registers them.
    static func routes(_ app: Application) {
        // First, so that it also stamps the responses ErrorMiddleware makes.
        app.middleware.use(Stamp(), at: .beginning)
        app.get("hello", ":name") { req in "Hello, \(try req.parameters.require("name"))!" }
        app.get("where") { req in
            let remote = req.remoteAddress.map { "\($0.ipAddress ?? "?") \($0.port ?? 0)" } ?? "none"
            return [
                "\(req.method.rawValue) \(req.url.path) \(req.url.query ?? "-") HTTP/\(req.version.major).\(req.version.minor)",
                "host \(req.headers.first(name: .host) ?? "-") agent \(req.headers.first(name: .userAgent) ?? "-")",
                "remote \(remote) peer \(req.peerAddress?.ipAddress ?? "none")",
                "cookie \(req.cookies["flavour"]?.string ?? "-") q \(req.query[String.self, at: "q"] ?? "-")",
            ].joined(separator: "\n")
        }
        app.post("todos") { req async throws -> Vapor.Response in
            var todo = try req.content.decode(Todo.self)
            todo.id = 1
            return try await todo.encodeResponse(status: .created, for: req)
        }
        app.get("todos", ":id") { req async throws -> Todo in
            guard let id = req.parameters.get("id", as: Int.self) else { throw Abort(.badRequest, reason: "not a number") }
            guard id == 1 else { throw Abort(.notFound, reason: "no to-do \(id)") }
            return Todo(id: 1, title: "milk")
        }
        app.on(.POST, "echo", body: .stream) { req -> Vapor.Response in
            Vapor.Response(
                status: .ok, headers: ["Content-Type": req.headers.first(name: .contentType) ?? "application/octet-stream"],
                body: .init(managedAsyncStream: { writer in
                    for try await chunk in req.body { try await writer.writeBuffer(chunk) }
                }))
        }
        app.get("count") { _ -> Vapor.Response in
            // A body streamed through an event-loop BodyStreamWriter.
            Vapor.Response(
                body: .init(stream: { writer in
                    _ = writer.write(.buffer(ByteBuffer(string: "1\n"))).flatMap {
                        writer.write(.buffer(ByteBuffer(string: "2\n")))
                    }.flatMap {
                        writer.write(.buffer(ByteBuffer(string: "3\n")))
                    }.flatMap {
                        writer.write(.end)
                    }
                }))
        }
        app.get("gone") { _ -> String in throw Abort(.gone, reason: "moved on") }
        app.get("broken") { _ -> String in throw Teapot() }
        app.put("created") { _ in Vapor.Response(status: .created, headers: ["Location": "/created/1"]) }
        app.delete("created") { _ in HTTPStatus.noContent }
    }

    /// Runs `body` against a server for an application with ``routes(_:)``,
    /// booted as the adapter expects, and shuts the application down after.
    static func withServer(
        errorMiddleware: Bool = true, maxBodySize: ByteCount = "16mb", tracer: (any Tracer)? = nil,
        _ body: (FastCGI.Server) async throws -> Void
    ) async throws {
        let app = try await Application.make(.testing)
        do {
            if !errorMiddleware { app.middleware = Middlewares() }
            routes(app)
            try await app.asyncBoot()
            var configuration = FastCGI.Server.Configuration(threadingLevel: 2)
            configuration.tracer = tracer
            let server = FastCGI.Server(
                factories: [.responder: .vapor(app, maxBodySize: maxBodySize)], configuration: configuration)
            try await body(server)
        } catch {
            try await app.asyncShutdown()
            throw error
        }
        try await app.asyncShutdown()
    }

    @Test("GET /hello/:name: the decoded parameter, 200, text/plain, Content-Length, middleware applied")
    func hello() async throws {
        try await Self.withServer { server in
            let response = await server.respond(to: TestRequest("GET", "/hello/Zo%C3%AB"))
            #expect(response.status == 200)
            #expect(response.text == "Hello, Zoë!")
            #expect(response.header("Content-Type") == "text/plain; charset=utf-8")
            #expect(response.header("Content-Length") == "\("Hello, Zoë!".utf8.count)")
            #expect(response.header("X-Middleware") == "seen")
        }
    }

    @Test("the request's head: method, path, query, version, headers, cookies, remote and peer address")
    func requestHead() async throws {
        try await Self.withServer { server in
            var request = TestRequest(
                "GET", "/where?q=a%20b&x=1",
                headers: ["User-Agent": "curl/8", "Host": "example.org:8080", "Cookie": "flavour=ginger"])
            request.params["REMOTE_ADDR"] = "2001:db8::7"
            request.params["REMOTE_PORT"] = "51234"
            request.params["SERVER_PROTOCOL"] = "HTTP/2.0"
            #expect(
                await server.respond(to: request).text == """
                    GET /where q=a%20b&x=1 HTTP/2.0
                    host example.org:8080 agent curl/8
                    remote 2001:db8::7 51234 peer 2001:db8::7
                    cookie ginger q a b
                    """)
            request.addHeader("X-Forwarded-For", "198.51.100.1")
            request.params["REMOTE_ADDR"] = "not an address"
            let forwarded = await server.respond(to: request).text
            #expect(forwarded.contains("remote none peer 198.51.100.1"))
        }
    }

    @Test("JSON Content: decoded from the body, encoded with its status; Abort as JSON errors")
    func json() async throws {
        try await Self.withServer { server in
            let created = await server.respond(
                to: TestRequest(
                    "POST", "/todos", headers: ["Content-Type": "application/json"], body: Array(#"{"title":"milk"}"#.utf8)))
            #expect(created.status == 201)
            #expect(created.header("Content-Type") == "application/json; charset=utf-8")
            let todo = try JSONDecoder().decode(Todo.self, from: Data(created.body))
            #expect(todo == Todo(id: 1, title: "milk"))
            let fetched = await server.respond(to: TestRequest("GET", "/todos/1"))
            #expect(try JSONDecoder().decode(Todo.self, from: Data(fetched.body)) == todo)
            let missing = await server.respond(to: TestRequest("GET", "/todos/9"))
            #expect(missing.status == 404)
            #expect(ErrorBody(missing) == ErrorBody(error: true, reason: "no to-do 9"))
            #expect(await server.respond(to: TestRequest("GET", "/todos/x")).status == 400)
            let malformed = await server.respond(
                to: TestRequest("POST", "/todos", headers: ["Content-Type": "application/json"], body: Array("{".utf8)))
            #expect(malformed.status == 400)
        }
    }

    @Test("POST /echo: a 300 KB body through a body: .stream route and a streamed response, byte for byte")
    func echo() async throws {
        try await Self.withServer { server in
            let body = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let response = await server.respond(
                to: TestRequest("POST", "/echo", headers: ["Content-Type": "application/octet-stream"], body: body))
            #expect(response.status == 200)
            #expect(response.body == body)
            #expect(response.header("Content-Type") == "application/octet-stream")
            #expect(response.header("Content-Length") == "300000")
            #expect(response.header("Transfer-Encoding") == nil, "the web server chunks, not the app")
            // No body at all: the route's sequence ends at once.
            let empty = await server.respond(to: TestRequest("POST", "/echo"))
            #expect(empty.status == 200 && empty.body.isEmpty)
        }
    }

    @Test("a body streamed through an event loop's BodyStreamWriter; HEAD runs no stream")
    func eventLoopStream() async throws {
        try await Self.withServer { server in
            let response = await server.respond(to: TestRequest("GET", "/count"))
            #expect(response.status == 200)
            #expect(response.text == "1\n2\n3\n")
            #expect(response.header("Content-Length") == "6")
            let head = await server.respond(to: TestRequest("HEAD", "/count"))
            #expect(head.status == 200 && head.body.isEmpty)
            #expect(head.header("Transfer-Encoding") == nil)
        }
    }

    @Test("HEAD is routed as GET and answered without the body, with the GET's Content-Length")
    func head() async throws {
        try await Self.withServer { server in
            let head = await server.respond(to: TestRequest("HEAD", "/hello/you"))
            #expect(head.status == 200)
            #expect(head.body.isEmpty)
            #expect(head.header("Content-Length") == "\("Hello, you!".utf8.count)")
            #expect(head.header("X-Middleware") == "seen")
        }
    }

    @Test("errors through ErrorMiddleware: no route 404, an Abort its status and reason, any other error 500")
    func errors() async throws {
        try await Self.withServer { server in
            let nowhere = await server.respond(to: TestRequest("GET", "/nowhere"))
            #expect(nowhere.status == 404)
            #expect(ErrorBody(nowhere) == ErrorBody(error: true, reason: "Not Found"))
            #expect(nowhere.header("X-Middleware") == "seen")
            let gone = await server.respond(to: TestRequest("GET", "/gone"))
            #expect(gone.status == 410)
            #expect(ErrorBody(gone) == ErrorBody(error: true, reason: "moved on"))
            let broken = await server.respond(to: TestRequest("GET", "/broken"))
            #expect(broken.status == 500)
            #expect(broken.header("Content-Type") == "application/json; charset=utf-8")
            #expect(await server.respond(to: TestRequest("GE T", "/hello/x")).status == 400)
        }
    }

    @Test("errors without ErrorMiddleware: the server's page, an Abort with its status, any other a 500 and stderr")
    func errorsWithoutMiddleware() async throws {
        try await Self.withServer(errorMiddleware: false) { server in
            #expect(await server.respond(to: TestRequest("GET", "/nowhere")).status == 404)
            #expect(await server.respond(to: TestRequest("GET", "/gone")).status == 410)
            let broken = await server.respond(to: TestRequest("GET", "/broken"))
            #expect(broken.status == 500)
            #expect(String(decoding: broken.stderr, as: UTF8.self).contains("Teapot"))
        }
    }

    @Test("status and headers set by the route; a 204 has no body")
    func statusAndHeaders() async throws {
        try await Self.withServer { server in
            let created = await server.respond(to: TestRequest("PUT", "/created"))
            #expect(created.status == 201)
            #expect(created.header("Location") == "/created/1")
            #expect(created.header("Content-Length") == "0")
            let deleted = await server.respond(to: TestRequest("DELETE", "/created"))
            #expect(deleted.status == 204)
            #expect(deleted.body.isEmpty)
        }
    }

    @Test("maxBodySize: a body up to it reaches the route, a larger one is a 413, declared or not")
    func bodyLimit() async throws {
        try await Self.withServer(maxBodySize: 1024) { server in
            let fits = Array(repeating: UInt8(ascii: "a"), count: 1024)
            let echoed = await server.respond(to: TestRequest("POST", "/echo", body: fits))
            #expect(echoed.status == 200 && echoed.body == fits)
            var tooLarge = TestRequest("POST", "/echo", body: fits + [UInt8(ascii: "b")])
            #expect(await server.respond(to: tooLarge).status == 413)
            tooLarge.params["CONTENT_LENGTH"] = ""  // chunked from the client, read to the end
            #expect(await server.respond(to: tooLarge).status == 413)
        }
    }

    @Test("tracing: the server's one span, named for the route")
    func span() async throws {
        let tracer = InMemoryTracer()
        try await Self.withServer(tracer: tracer) { server in
            let response = await server.respond(to: TestRequest("GET", "/hello/zoe"))
            #expect(response.status == 200)
        }
        let spans = tracer.finishedSpans
        #expect(spans.count == 1)
        #expect(spans.first?.operationName == "GET /hello/:name")
        #expect(spans.first?.attributes["http.route"]?.toSpanAttribute() == "/hello/:name")
        #expect(spans.first?.kind == .server)
    }
}
