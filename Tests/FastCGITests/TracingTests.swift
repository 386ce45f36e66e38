import Foundation
import InMemoryTracing
import Testing
import Tracing

@testable import FastCGI

/// Issue 33, point 2: a server span per request, its parent taken from the
/// web server's `HTTP_TRACEPARENT`, OpenTelemetry's HTTP server attribute
/// names, the status and the error recorded; none when no tracer is set.
@Suite("Tracing: a server span per request")
struct TracingTests {
    static func server(_ tracer: InMemoryTracer, _ body: @escaping @Sendable (Request) throws -> Void) -> Server {
        var configuration = Server.Configuration()
        configuration.tracer = tracer
        return Server(configuration: configuration, responder: body)
    }

    @Test("the span: server kind, the caller's trace, attributes, the handler's spans as children")
    func serverSpan() throws {
        let tracer = InMemoryTracer()
        let server = Self.server(tracer) { request in
            #expect(request.span != nil)
            tracer.withSpan("inner") { _ in }
            try request.write("ok")
        }
        var request = TestRequest("GET", "/items/7?full=1")
        // InMemoryTracer's own propagation keys, as the web server passes headers.
        request.params["HTTP_IN_MEMORY_TRACE_ID"] = "trace-1"
        request.params["HTTP_IN_MEMORY_SPAN_ID"] = "caller-span"
        request.params["REMOTE_ADDR"] = "192.0.2.7"
        request.params["HTTP_USER_AGENT"] = "curl/8"
        request.params["SERVER_PROTOCOL"] = "HTTP/1.1"
        _ = server.respond(to: request)
        let spans = tracer.finishedSpans
        let span = try #require(spans.first { $0.kind == .server })
        #expect(span.operationName == "GET")
        #expect(span.traceID == "trace-1" && span.parentSpanID == "caller-span")
        #expect(span.attributes["http.request.method"]?.toSpanAttribute() == "GET")
        #expect(span.attributes["url.path"]?.toSpanAttribute() == "/items/7")
        #expect(span.attributes["url.query"]?.toSpanAttribute() == "full=1")
        #expect(span.attributes["client.address"]?.toSpanAttribute() == "192.0.2.7")
        #expect(span.attributes["user_agent.original"]?.toSpanAttribute() == "curl/8")
        #expect(span.attributes["network.protocol.version"]?.toSpanAttribute() == "1.1")
        #expect(span.attributes["http.response.status_code"]?.toSpanAttribute() == 200)
        #expect(span.status == nil)
        let inner = try #require(spans.first { $0.operationName == "inner" })
        #expect(inner.parentSpanID == span.spanContext.spanID && inner.traceID == "trace-1")
    }

    @Test("a 5xx: error status and error.type; a 404 is no error")
    func errors() throws {
        struct Broken: Error {}
        let tracer = InMemoryTracer()
        let server = Self.server(tracer) { request in
            if request.path == "/missing" { throw HTTPError(.notFound) }
            throw Broken()
        }
        _ = server.respond(to: TestRequest("GET", "/missing"))
        _ = server.respond(to: TestRequest("POST", "/broken"))
        let spans = tracer.finishedSpans
        #expect(spans.count == 2)
        #expect(spans[0].attributes["http.response.status_code"]?.toSpanAttribute() == 404 && spans[0].status == nil)
        #expect(spans[1].attributes["http.response.status_code"]?.toSpanAttribute() == 500)
        #expect(spans[1].status?.code == .error)
        #expect(spans[1].attributes["error.type"] != nil)
    }

    @Test("the span ends at finish(), not when the work after it ends")
    func endsAtFinish() throws {
        let tracer = InMemoryTracer()
        let server = Self.server(tracer) { request in
            try request.write("done")
            request.finish()
            #expect(tracer.finishedSpans.count == 1)
        }
        _ = server.respond(to: TestRequest("POST", "/", body: [1, 2, 3]))
        #expect(tracer.finishedSpans.count == 1)
    }

    @Test("no tracer set or bootstrapped: no span")
    func noTracer() {
        let server = Server(configuration: Server.Configuration()) { request in
            #expect(request.span == nil)
        }
        #expect(server.tracer == nil)
        _ = server.respond(to: TestRequest("GET", "/"))
    }

    @Test("through nginx: the span joins the traceparent the client sent", arguments: [1, 2])
    func behindNginx(level: Int) throws {
        let app = try RunningApp(
            "echo", unix: true, arguments: ["--threading-level", "\(level)"], environment: ["ECHO_TRACE": "1"])
        let nginx = try RunningNginx(upstream: app.address)
        let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        #expect(try nginx.curl("/traced?x=1", ["-H", "traceparent: \(traceparent)"]).code == 200)
        let (_, report) = try nginx.curl("/spans", ["-H", "X-Echo-Spans: 1"])
        let lines = String(decoding: report, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 1, "\(lines)")
        let expected = "GET kind=server trace=0af7651916cd43dd8448eb211c80319c parent=b7ad6b7169203331"
        #expect(lines.first == "\(expected) status=200 error=false", "level \(level): \(lines)")
    }
}
