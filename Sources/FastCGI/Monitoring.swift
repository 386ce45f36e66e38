/// Operational features, all off by default: a ping page, a status page, a
/// slow-request log and a per-request timeout (what PHP-FPM's `ping.path`,
/// `pm.status_path`, `request_slowlog_timeout` and `request_terminate_timeout` do).
///
/// ```swift
/// var monitoring = Monitoring()
/// monitoring.pingPath = "/ping"
/// monitoring.statusPath = "/status"
/// monitoring.slowRequestThreshold = .seconds(2)
/// monitoring.requestTimeout = .seconds(30)
/// var configuration = Server.Configuration()
/// configuration.monitoring = monitoring
/// try Server(factories: [.responder: .type(App.self)], configuration: configuration).run()
/// ```
///
/// Ping and status requests are answered by the connection's own thread without
/// calling a handler, so they answer even when every worker is busy. A request
/// matches when its `SCRIPT_NAME` (or, without one, the path of `REQUEST_URI`)
/// equals the path. Keep these paths internal in the web server's configuration:
/// the status page shows load figures.
public struct Monitoring: Sendable, Hashable {
    /// Path answered with ``pingResponse`` (`text/plain`); nil turns it off.
    public var pingPath: String?
    /// The ping page's body (default `pong`).
    public var pingResponse = "pong"
    /// Path answered with the status page (plain text, or JSON when the query
    /// string contains `json`); nil turns it off.
    public var statusPath: String?
    /// How long a request may run before it is logged once as slow (with its
    /// `SCRIPT_NAME` and `REQUEST_URI`) and counted; nil turns it off.
    public var slowRequestThreshold: Duration?
    /// How long a request may run before it is ended: it is marked aborted, its
    /// later output is dropped, and the web server gets its `FCGI_END_REQUEST` (with
    /// a `504 Gateway Timeout` response if nothing was sent yet). The handler's
    /// thread cannot be killed: it runs on until it returns, and the status page
    /// counts it. Nil turns it off.
    public var requestTimeout: Duration?

    /// Everything off.
    public init() {}

    /// Whether slow or long requests are watched.
    var watchesRequests: Bool { slowRequestThreshold != nil || requestTimeout != nil }

    /// Whether a request whose input is complete may run on its connection's
    /// serving thread (both engines). Not with a request timeout: a handler that
    /// hangs would hold that thread after the 504, and the web server's next
    /// request on the connection would wait for it; on a worker's or pool thread
    /// only that thread is held.
    var allowsInlineHandlers: Bool { requestTimeout == nil }
}
