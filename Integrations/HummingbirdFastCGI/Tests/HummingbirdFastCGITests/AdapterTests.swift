import FastCGI
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdFastCGI
import InMemoryTracing
import Testing
import Tracing

/// The adapter in memory: a FastCGI request as nginx sends it, through a
/// Hummingbird router, back as a FastCGI response (`Server.respond(to:)`).
@Suite("Hummingbird over FastCGI, in memory")
struct AdapterTests {
    struct Teapot: Error {}

    /// Adds `X-Middleware: seen` to every response.
    struct Stamp<Context: Hummingbird.RequestContext>: RouterMiddleware {
        func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
            async throws -> Response
        {
            var response = try await next(request, context)
            response.headers[HTTPField.Name("X-Middleware")!] = "seen"
            return response
        }
    }

    static func server() -> Server {
        // HEAD routes as GET, as behind Hummingbird's own server.
        let router = Router(context: BasicFastCGIRequestContext.self, options: .autoGenerateHeadEndpoints)
        router.add(middleware: Stamp())
        // Parameters are raw path segments, as in Hummingbird: decoding is the route's.
        router.get("/hello/{name}") { _, context in
            "Hello, \(try context.parameters.require("name").removingPercentEncoding ?? "?")!"
        }
        router.post("/echo") { request, _ in Response(status: .ok, body: ResponseBody(asyncSequence: request.body)) }
        router.get("/where") { request, context in
            "\(request.head.scheme ?? "-") \(request.head.authority ?? "-") \(request.uri.path) "
                + "\(request.uri.query ?? "-") \(request.headers[.userAgent] ?? "-") \(context.environ["REMOTE_ADDR"] ?? "-")"
        }
        router.get("/gone") { _, _ -> String in throw Hummingbird.HTTPError(.gone, message: "moved on") }
        router.get("/broken") { _, _ -> String in throw Teapot() }
        router.put("/created") { _, _ in Response(status: .created, headers: [.location: "/created/1"]) }
        return Server(factories: [.responder: .hummingbird(router)], configuration: .init(threadingLevel: 2))
    }

    @Test("GET /hello/{name}: the route's parameter, 200, text/plain, Content-Length, middleware applied")
    func hello() async {
        let response = await Self.server().respond(to: TestRequest("GET", "/hello/Zo%C3%AB"))
        #expect(response.status == 200)
        #expect(response.text == "Hello, Zoë!")
        #expect(response.header("Content-Type")?.hasPrefix("text/plain") == true)
        #expect(response.header("Content-Length") == "\("Hello, Zoë!".utf8.count)")
        #expect(response.header("X-Middleware") == "seen")
    }

    @Test("POST /echo: a 300 KB body streamed back byte for byte")
    func echo() async {
        let body = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let response = await Self.server().respond(
            to: TestRequest("POST", "/echo", headers: ["Content-Type": "application/octet-stream"], body: body))
        #expect(response.status == 200)
        #expect(response.body == body)
    }

    @Test("the head: scheme, authority, path and query from REQUEST_URI, HTTP_* headers, the params in the context")
    func head() async {
        let response = await Self.server().respond(
            to: TestRequest(
                "GET", "/where?a=1&b=%20", headers: ["User-Agent": "curl/8", "Host": "example.org:8443"],
                params: ["HTTPS": "on", "REQUEST_SCHEME": "", "REMOTE_ADDR": "192.0.2.7"]))
        #expect(response.text == "https example.org:8443 /where a=1&b=%20 curl/8 192.0.2.7")
    }

    @Test("without REQUEST_URI or HTTP_HOST: SCRIPT_NAME + PATH_INFO + QUERY_STRING, SERVER_NAME:SERVER_PORT")
    func cgiFallbacks() throws {
        let environ = CGIEnvironment([
            "REQUEST_METHOD": "PATCH", "SCRIPT_NAME": "/app", "PATH_INFO": "/items/3", "QUERY_STRING": "x=y",
            "SERVER_NAME": "internal", "SERVER_PORT": "8080", "CONTENT_TYPE": "", "CONTENT_LENGTH": "12",
            "HTTP_X_FORWARDED_FOR": "198.51.100.1",
        ])
        let head = try #require(HTTPRequest(fastCGI: environ))
        #expect(head.method == .patch)
        #expect(head.scheme == "http")
        #expect(head.authority == "internal:8080")
        #expect(head.path == "/app/items/3?x=y")
        #expect(head.headerFields[.contentLength] == "12")
        #expect(head.headerFields[.contentType] == nil, "an empty CONTENT_TYPE is no header")
        #expect(head.headerFields[HTTPField.Name("X-Forwarded-For")!] == "198.51.100.1")
        #expect(HTTPRequest(fastCGI: CGIEnvironment(["REQUEST_METHOD": "GE T"])) == nil)
    }

    @Test("errors: no route 404, an HTTPError its status, any other error the server's 500, a bad method 400")
    func errors() async {
        let server = Self.server()
        #expect(await server.respond(to: TestRequest("GET", "/nowhere")).status == 404)
        let gone = await server.respond(to: TestRequest("GET", "/gone"))
        #expect(gone.status == 410)
        #expect(gone.text.contains("moved on"))
        let broken = await server.respond(to: TestRequest("GET", "/broken"))
        #expect(broken.status == 500)
        #expect(String(decoding: broken.stderr, as: UTF8.self).contains("Teapot"))
        #expect(await server.respond(to: TestRequest("GE T", "/hello/x")).status == 400)
    }

    @Test("status and headers set by the route; HEAD gets the head without a body")
    func statusAndHead() async {
        let server = Self.server()
        let created = await server.respond(to: TestRequest("PUT", "/created"))
        #expect(created.status == 201)
        #expect(created.header("Location") == "/created/1")
        #expect(created.header("Content-Type") == nil, "no default Content-Type is added")
        let head = await server.respond(to: TestRequest("HEAD", "/hello/you"))
        #expect(head.status == 200)
        #expect(head.body.isEmpty)
        #expect(head.header("Content-Length") == "\("Hello, you!".utf8.count)")
    }

    @Test("tracing: the server's one span, named for the route")
    func span() async throws {
        let tracer = InMemoryTracer()
        let router = Router(context: BasicFastCGIRequestContext.self)
        router.get("/hello/{name}") { _, _ in "hi" }
        var configuration = Server.Configuration(threadingLevel: 2)
        configuration.tracer = tracer
        let server = Server(factories: [.responder: .hummingbird(router)], configuration: configuration)
        let response = await server.respond(to: TestRequest("GET", "/hello/zoe"))
        #expect(response.status == .ok)
        let spans = tracer.finishedSpans
        #expect(spans.count == 1)
        #expect(spans.first?.operationName == "GET /hello/{name}")
        #expect(spans.first?.attributes["http.route"]?.toSpanAttribute() == "/hello/{name}")
        #expect(spans.first?.kind == .server)
    }
}
