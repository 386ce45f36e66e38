import Tracing

// A server span for each request (swift-distributed-tracing), as OpenTelemetry's
// HTTP server conventions name its attributes. Made only when a tracer is set or
// bootstrapped: otherwise nothing here runs.

/// Reads a W3C `traceparent` (or any header a tracer asks for) from the params,
/// where the web server passes request headers as `HTTP_*`.
struct CGIEnvironmentExtractor: Extractor {
    func extract(key: String, from carrier: CGIEnvironment) -> String? {
        var name = "HTTP_"
        for scalar in key.unicodeScalars {
            name.unicodeScalars.append(scalar == "-" ? "_" : scalar.properties.uppercaseMapping.unicodeScalars.first!)
        }
        return carrier[name]
    }
}

extension Server {
    /// The tracer of `configuration`, else the bootstrapped one; nil when that
    /// is the no-op tracer (no span is ever made then).
    static func tracer(_ configuration: Configuration) -> (any Tracer)? {
        if let tracer = configuration.tracer { return tracer }
        let tracer = InstrumentationSystem.tracer
        return tracer is NoOpTracer ? nil : tracer
    }

    /// Starts the request's server span, its context taken from the params
    /// (`HTTP_TRACEPARENT`, `HTTP_TRACESTATE`).
    func startSpan(for request: Request, tracer: any Tracer) -> any Span {
        let environ = request.environ
        var context = InstrumentationContext.topLevel
        tracer.extract(environ, into: &context, using: CGIEnvironmentExtractor())
        let method = environ["REQUEST_METHOD"] ?? "_OTHER"
        let span = tracer.startSpan(method, context: context, ofKind: .server)
        span.updateAttributes { attributes in
            attributes["http.request.method"] = method
            attributes["url.path"] = request.path
            if let query = environ["QUERY_STRING"], !query.isEmpty { attributes["url.query"] = query }
            attributes["url.scheme"] = environ["HTTPS"].map { $0 == "on" || $0 == "1" } == true ? "https" : "http"
            if let host = environ["SERVER_NAME"] { attributes["server.address"] = host }
            if let port = environ["SERVER_PORT"].flatMap({ Int($0) }) { attributes["server.port"] = port }
            if let peer = environ["REMOTE_ADDR"], !peer.isEmpty { attributes["client.address"] = peer }
            if let port = environ["REMOTE_PORT"].flatMap({ Int($0) }) { attributes["client.port"] = port }
            if let agent = environ["HTTP_USER_AGENT"] { attributes["user_agent.original"] = agent }
            if let version = environ["SERVER_PROTOCOL"], version.hasPrefix("HTTP/") {
                attributes["network.protocol.version"] = String(version.dropFirst(5))
            }
        }
        return span
    }

    /// Ends the span with the response: its status code, and an error for a 5xx.
    func endSpan(_ span: any Span, for request: Request) {
        let status = request.responseStatusCode
        span.attributes["http.response.status_code"] = status
        if status >= 500 {
            span.attributes["error.type"] = request.handlerFailure ?? String(status)
            span.setStatus(SpanStatus(code: .error))
        }
        span.end()
    }
}
