import FastCGI
import HTTPTypes
import Hummingbird
import Logging
import Tracing

extension HandlerFactory {
    /// Serves a Hummingbird router — its routes and middleware — as a FastCGI
    /// responder: each request becomes a Hummingbird `Request` (its head rebuilt
    /// from the params, see `HTTPRequest(fastCGI:)`; its body streamed from
    /// `FCGI_STDIN`), and the `Response` is written back as `FCGI_STDOUT`.
    ///
    /// ```swift
    /// let router = Router(context: BasicFastCGIRequestContext.self)
    /// router.get("/hello/{name}") { _, context in
    ///     "Hello, \(try context.parameters.require("name"))!"
    /// }
    /// let server = Server(factories: [.responder: .hummingbird(router)], configuration: .init(address: "127.0.0.1:9000"))
    /// ```
    ///
    /// With a tracer (`Server.Configuration.tracer`, or one bootstrapped), the
    /// server's span for the request is named for the matched route
    /// (`GET /hello/{name}`, `http.route`); Hummingbird's `TracingMiddleware`
    /// is not needed, and would add a second server span under it.
    ///
    /// The handler is async: it runs on the Swift engine at every threading level
    /// and holds no thread while it awaits. An error the router does not turn into
    /// a response (an `HTTPResponseError` becomes its response) is the server's
    /// `500` page and a line on stderr, as for any handler.
    public static func hummingbird<Builder: HTTPResponderBuilder>(_ builder: Builder) -> HandlerFactory
    where Builder.Responder.Context: Hummingbird.RequestContext, Builder.Responder.Context.Source == FastCGIRequestContextSource {
        hummingbird(responder: builder.buildResponder())
    }

    /// Serves a Hummingbird responder (a built router, or one of your own).
    public static func hummingbird<Responder: HTTPResponder>(responder: Responder) -> HandlerFactory
    where Responder.Context: Hummingbird.RequestContext, Responder.Context.Source == FastCGIRequestContextSource {
        .async { request in try await HummingbirdBridge.serve(request, with: responder) }
    }
}

/// One FastCGI request through a Hummingbird responder.
enum HummingbirdBridge {
    static func serve<Responder: HTTPResponder>(_ request: FastCGI.Request, with responder: Responder) async throws
    where Responder.Context: Hummingbird.RequestContext, Responder.Context.Source == FastCGIRequestContextSource {
        guard let head = HTTPRequest(fastCGI: request.environ) else {
            throw FastCGI.HTTPError(.badRequest, "not a valid HTTP method: \(request.environ["REQUEST_METHOD"] ?? "")")
        }
        var logger = request.logger
        logger[metadataKey: "hb.request.id"] = "\(RequestID())"
        let context = Responder.Context(source: FastCGIRequestContextSource(logger: logger, environ: request.environ))
        let hbRequest = Hummingbird.Request(
            head: head, body: RequestBody(asyncSequence: FastCGIRequestBody(input: request.stdin)))
        let response: Response
        do {
            response = try await responder.respond(to: hbRequest, context: context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: hbRequest, context: context)
        }
        // The server's span is the request's (no second one): named for the route.
        if let span = request.span, let route = context.endpointPath {
            span.operationName = "\(head.method.rawValue) \(route)"
            span.attributes["http.route"] = route
        }
        try await FastCGIResponseWriter.send(response, for: request, head: head.method == .head)
    }
}
