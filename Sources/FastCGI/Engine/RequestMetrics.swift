import CoreMetrics
import Synchronization

/// The server's request metrics through swift-metrics, named as OpenTelemetry's
/// HTTP server conventions name them, so that swift-otel or swift-prometheus
/// export them beside an app's own:
///
/// | metric | kind | dimensions |
/// |---|---|---|
/// | `http.server.request.duration` | timer: handler start to response end | `http.request.method` (`_OTHER` for an unknown one), `http.response.status_code`; `error.type` when the handler threw into a 5xx page (the error's type) or answered 5xx (the code) |
/// | `http.server.active_requests` | meter: handlers running | — |
/// | `fastcgi.server.errors` | counter | `error.type`: `handler`, `aborted`, `timeout`, `input_timeout`, `refused`, `limit` |
///
/// Made only when a factory was given (``Server/metricsFactory``) or
/// bootstrapped (`MetricsSystem.bootstrap`): with the default no-op factory the
/// server records nothing.
final class RequestMetrics: Sendable {
    /// What went wrong with a request, as `fastcgi.server.errors` counts it.
    enum ErrorKind: String, CaseIterable, Sendable {
        /// The handler threw and the server answered 5xx.
        case handler
        /// The web server aborted the request or lost its connection.
        case aborted
        /// The request timeout ended it.
        case timeout
        /// Its input stalled (``ConnectionLimits/inputTimeout``).
        case inputTimeout = "input_timeout"
        /// Its connection's peer read nothing for the send timeout
        /// (``ConnectionLimits/sendTimeout``): the connection was closed.
        case sendTimeout = "send_timeout"
        /// Refused without running (unknown role, `FCGI_CANT_MPX_CONN`, overloaded).
        case refused
        /// A limit was reached (connections, buffered input, overload).
        case limit
    }

    private struct TimerKey: Hashable {
        var method: String
        var status: Int
        var errorType: String?
    }

    private let factory: any MetricsFactory
    private let active: Meter
    private let errors: [ErrorKind: Counter]
    /// Handlers that went on after `Request.finish()`: from their start to their return.
    private let background: Timer
    /// One timer per method, status and error type (a handful in practice).
    private let timers = Mutex<[TimerKey: Timer]>([:])

    /// Nil when `factory` is the no-op one: nothing to record.
    init?(factory: any MetricsFactory) {
        guard !(factory is NOOPMetricsHandler) else { return nil }
        self.factory = factory
        active = Meter(label: "http.server.active_requests", factory: factory)
        var errors: [ErrorKind: Counter] = [:]
        for kind in ErrorKind.allCases {
            errors[kind] = Counter(label: "fastcgi.server.errors", dimensions: [("error.type", kind.rawValue)], factory: factory)
        }
        self.errors = errors
        background = Timer(label: "fastcgi.server.background.duration", factory: factory)
    }

    /// A handler starts: the time it started.
    func started() -> ContinuousClock.Instant {
        active.increment()
        return .now
    }

    /// The handler returned and the response ended.
    func finished(since start: ContinuousClock.Instant, method: String?, status: Int, handlerError: String?) {
        let elapsed = ContinuousClock.now - start
        active.decrement()
        if handlerError != nil { count(.handler) }
        let key = TimerKey(
            method: method.flatMap { Self.knownMethods.contains($0) ? $0 : nil } ?? "_OTHER", status: status,
            errorType: handlerError ?? (status >= 500 ? String(status) : nil))
        let timer = timers.withLock { timers in
            if let timer = timers[key] { return timer }
            var dimensions = [("http.request.method", key.method), ("http.response.status_code", String(key.status))]
            if let errorType = key.errorType { dimensions.append(("error.type", errorType)) }
            let timer = Timer(label: "http.server.request.duration", dimensions: dimensions, factory: factory)
            timers[key] = timer
            return timer
        }
        timer.recordNanoseconds(elapsed.nanoseconds)
    }

    /// A handler that called `Request.finish()` returned: how long it ran in all.
    func backgroundFinished(since start: ContinuousClock.Instant) {
        background.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
    }

    func count(_ kind: ErrorKind) { errors[kind]?.increment() }

    /// The methods OpenTelemetry names; any other is `_OTHER` (a client's made-up
    /// method must not make a new time series).
    private static let knownMethods: Set<String> = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY",
    ]
}
