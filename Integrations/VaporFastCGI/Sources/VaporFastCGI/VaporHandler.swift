import FastCGI
import NIOCore
import Tracing
import Vapor

extension HandlerFactory {
    /// Serves a Vapor `Application` — its routes, middleware and error handling —
    /// as a FastCGI responder: each request becomes a Vapor `Request` (its head
    /// rebuilt from the params; its body read from `FCGI_STDIN`) that goes
    /// through the application's responder (`app.responder`, as Vapor's own HTTP
    /// server uses it), and the `Response` is written back as `FCGI_STDOUT`.
    ///
    /// ```swift
    /// let app = try await Application.make(.production)
    /// app.get("hello", ":name") { req in "Hello, \(req.parameters.get("name") ?? "?")!" }
    /// try await app.asyncBoot()   // the lifecycle handlers; Vapor's HTTP server is never started
    /// let server = FastCGI.Server(factories: [.responder: .vapor(app)], configuration: .init(address: "127.0.0.1:9000"))
    /// try await server.runUntilStopped()
    /// try await app.asyncShutdown()
    /// ```
    ///
    /// Call it once the routes and middleware are configured and the
    /// application booted: it takes `app.responder.current` then, as Vapor's
    /// server does when it starts.
    ///
    /// With a tracer (`Server.Configuration.tracer`, or one bootstrapped), the
    /// server's span for the request is named for the matched route
    /// (`GET /hello/:name`, `http.route`); Vapor's `TracingMiddleware` is not
    /// needed, and would add a second server span under it.
    ///
    /// The request's body is read whole before the responder runs (up to
    /// `maxBodySize`; a larger one is answered `413` without running it), and a
    /// streamed response body is collected before it is sent: Vapor 4 lets
    /// only its own HTTP server stream a body into a `Request` or out of a
    /// `Response`. Routes see the body as they would behind Vapor's server
    /// when it arrives in one piece (`req.body.data`, `req.content`,
    /// `for try await` over `req.body` on a `body: .stream` route).
    ///
    /// The handler is async: it runs on the Swift engine at every threading
    /// level and holds no thread while it awaits. An error that no middleware
    /// turned into a response (an app without `ErrorMiddleware`) is the
    /// server's error page: an `AbortError` with its status, any other a `500`
    /// and a line on stderr.
    public static func vapor(_ application: Application, maxBodySize: ByteCount = "16mb") -> HandlerFactory {
        let bridge = VaporBridge(
            application: application, responder: application.responder.current, maxBodySize: maxBodySize.value)
        return .async { request in try await bridge.serve(request) }
    }
}

/// One FastCGI request through a Vapor responder.
struct VaporBridge: Sendable {
    let application: Application
    let responder: any Responder
    let maxBodySize: Int

    func serve(_ request: FastCGI.Request) async throws {
        guard let head = VaporRequestHead(request.environ) else {
            throw FastCGI.HTTPError(.badRequest, "not a valid HTTP method: \(request.environ["REQUEST_METHOD"] ?? "")")
        }
        let body = try await readBody(of: request)
        let eventLoop = application.eventLoopGroup.any()
        let vaporRequest = Vapor.Request(
            application: application, method: head.method, url: URI(path: head.uri), version: head.version,
            headersNoUpdate: head.headers, collectedBody: body, remoteAddress: head.remoteAddress,
            logger: request.logger, on: eventLoop)
        let response: Vapor.Response
        do {
            response = try await responder.respond(to: vaporRequest).get()
        } catch let error as any AbortError {
            // No middleware made a response of it (Vapor's server would close
            // the connection): the server's page for its status.
            throw FastCGI.HTTPError(FastCGI.HTTPError.Status(Int(error.status.code)), error.reason)
        }
        // The server's span is the request's (no second one): named for the route.
        if let span = request.span, let route = vaporRequest.route {
            let path = "/" + route.path.map(\.description).joined(separator: "/")
            span.operationName = "\(head.method.rawValue) \(path)"
            span.attributes["http.route"] = path
        }
        try await VaporResponseWriter.send(response, for: request, head: head.method == .HEAD, on: eventLoop)
    }

    /// The whole body, nil when there is none (as Vapor's server has it);
    /// `413` past `maxBodySize`.
    private func readBody(of request: FastCGI.Request) async throws -> ByteBuffer? {
        let declared = request.environ["CONTENT_LENGTH"].flatMap { Int($0) }
        if let declared, declared > maxBodySize { throw tooLarge(request) }
        var body: ByteBuffer?
        while true {
            let chunk = try await request.stdin.read(65536)
            if chunk.isEmpty { return body }
            if body == nil {
                body = ByteBuffer()
                body?.reserveCapacity(min(declared ?? 0, maxBodySize))
            }
            guard body!.readableBytes + chunk.count <= maxBodySize else { throw tooLarge(request) }
            body!.writeBytes(chunk)
        }
    }

    private func tooLarge(_ request: FastCGI.Request) -> FastCGI.HTTPError {
        FastCGI.HTTPError(
            .contentTooLarge,
            "request \(request.requestID): the body exceeds the \(maxBodySize)-byte limit of .vapor(_:maxBodySize:)")
    }
}
