import FastCGI
import InMemoryTracing
import Tracing

#if canImport(Glibc)
    import Glibc
#endif

/// ECHO_TRACE=1 (environment): the server gets this tracer, which keeps its spans
/// in memory and takes a request's parent from a W3C `traceparent` header, so the
/// tests can check through nginx that the span joins the caller's trace; a
/// request with `X-Echo-Spans: 1` answers with the finished spans, one a line:
/// `NAME kind=KIND trace=ID parent=ID status=CODE error=BOOL`.
struct W3CInMemoryTracer: Tracer {
    let memory = InMemoryTracer()

    func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> InstrumentationContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> InMemorySpan {
        memory.startSpan(
            operationName, context: context(), ofKind: kind, at: instant(), function: function, file: fileID, line: line)
    }

    func forceFlush() {}

    func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier, into context: inout InstrumentationContext, using extractor: Extract
    ) where Extract.Carrier == Carrier {
        // version-traceid-parentid-flags (W3C Trace Context §3.2)
        guard let header = extractor.extract(key: "traceparent", from: carrier) else { return }
        let fields = header.split(separator: "-")
        guard fields.count == 4, fields[1].count == 32, fields[2].count == 16 else { return }
        context.inMemorySpanContext = InMemorySpanContext(
            traceID: String(fields[1]), spanID: String(fields[2]), parentSpanID: nil)
    }

    func inject<Carrier, Inject: Injector>(
        _ context: InstrumentationContext, into carrier: inout Carrier, using injector: Inject
    ) where Inject.Carrier == Carrier {}

    /// The finished spans, one a line.
    func report() -> String {
        memory.finishedSpans.map { span in
            var status = "-"
            if case .int64(let code) = span.attributes["http.response.status_code"]?.toSpanAttribute() { status = "\(code)" }
            return "\(span.operationName) kind=\(span.kind) trace=\(span.traceID) parent=\(span.parentSpanID ?? "-") "
                + "status=\(status) error=\(span.status?.code == .error)\n"
        }.joined()
    }
}

/// The tracer ECHO_TRACE=1 asks for.
let echoTracer: W3CInMemoryTracer? = getenv("ECHO_TRACE").map { _ in W3CInMemoryTracer() }
