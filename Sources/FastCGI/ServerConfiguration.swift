import CoreMetrics
import Logging
import Tracing

extension Server {
    /// Everything about a server but its handlers, as one value: built up
    /// field by field, read from a command line (`ServerOptions` in the
    /// `FastCGIOptions` library), passed around. ``Server/init(factories:configuration:)``
    /// takes it.
    ///
    /// ```swift
    /// var configuration = Server.Configuration(address: "unix:/run/app/app.sock")
    /// configuration.workers = 32
    /// configuration.monitoring.requestTimeout = .seconds(30)
    /// configuration.connectionLimits.inputTimeout = .seconds(20)
    /// configuration.monitoring.statusPath = "/status"
    /// let server = Server(factories: [.responder: .closure { try $0.write("hi") }], configuration: configuration)
    /// ```
    public struct Configuration: Sendable {
        /// How the server uses threads (default 1).
        public var threadingLevel: ThreadingLevel
        /// Handler threads at levels 1 and 2 (default 10): the bound on blocking
        /// handlers running at once. Async handlers are not bound by it (see
        /// ``asyncHandlerLimit``).
        public var workers = 10
        /// At most this many async handlers run at once; more wait, holding no
        /// thread (default nil: no bound at levels 1 and 2; level 0 runs one
        /// request at a time, async or not). An async handler holds no thread
        /// while it awaits, so ``workers`` does not bound it.
        public var asyncHandlerLimit: Int?
        /// Where to listen; nil: fd 0 (spawn-fcgi), socket activation, or CGI.
        public var address: ListenAddress?
        /// The unix socket's mode, owner and group.
        public var socketPermissions = SocketPermissions()
        /// With systemd socket activation and several sockets, the one to serve.
        public var activationSocketName: String?
        /// Stop after this many requests (0: never).
        public var maxRequests = 0
        /// Answers to `FCGI_GET_VALUES` that replace the defaults.
        public var params: [String: String]?
        /// The request class made for each request.
        public var requestType: Request.Type = Request.self
        /// Memory bounds for each request.
        public var limits = RequestLimits()
        /// Bounds on each connection, its idle, input and send timeouts among them.
        public var connectionLimits = ConnectionLimits()
        /// Ping and status pages, the slow-request log and the request timeout.
        public var monitoring = Monitoring()
        /// Where the server logs.
        public var logger = Logger(label: "swift-fcgi")
        /// One line per request, in text or JSON, to standard error or a file
        /// (nil, the default: none).
        public var accessLog: AccessLog?
        /// How `Request.offload(file:contentType:)` hands files to the web server
        /// (nil, the default: the app sends them itself).
        public var fileOffload: FileOffload?
        /// Whether SIGTERM, SIGINT and SIGUSR1 stop the server (default true;
        /// false when a `ServiceGroup` or the app owns the signals).
        public var handleSignals = true
        /// How long a stop waits for requests in flight (default 10 s).
        public var shutdownTimeout: Duration = .seconds(10)
        /// Worker processes kept by a process manager (0: serve in this process).
        /// Each worker runs this binary from the start, so code before `run()`
        /// runs in the manager and again in every worker: see ``prepare``.
        public var processes = 0
        /// The user (a name or number) the serving processes run as: a pool's
        /// workers, or the one process once it has its socket (nil: unchanged).
        /// Needs the server started as root (to bind a privileged port or make
        /// a socket file for the web server's group), as nginx's `user` and
        /// PHP-FPM's `user`/`group`: the master of a pool stays root to manage
        /// the workers.
        public var user: String?
        /// The group for ``user`` (nil: the user's own group); supplementary
        /// groups are dropped.
        public var group: String?
        /// With processes: the program the workers are started from, on every
        /// start and reload (nil: the path this process was started as —
        /// argv[0], made absolute against the start directory, not resolved
        /// through symlinks — so a reload after a `current -> releases/v2`
        /// swap runs v2).
        public var binary: String?
        /// With processes: replace a worker past this resident size in bytes.
        public var maxWorkerMemory: Int?
        /// With processes: a serving worker that publishes no heartbeat for this
        /// long — stopped (SIGSTOP, a debugger) or wedged — is killed and
        /// replaced (default 30 s; nil: never). Each worker publishes one a
        /// second from a thread of its own, so a busy handler does not delay it;
        /// a handler that hangs is the request timeout's.
        public var workerTimeout: Duration? = .seconds(30)
        /// Where the request metrics go (nil: `MetricsSystem.factory`).
        public var metricsFactory: (any MetricsFactory)?
        /// Who gets a server span for each request (nil: the tracer
        /// `InstrumentationSystem` was bootstrapped with before the server was
        /// made; none, at no cost, if it was not). The span's parent comes from
        /// the W3C `traceparent` the web server passes (`HTTP_TRACEPARENT`); its
        /// attributes are OpenTelemetry's HTTP server ones; a 5xx marks it an
        /// error. The handler runs in its context (`Request.span`).
        ///
        /// ```swift
        /// import Tracing
        ///
        /// // InstrumentationSystem.bootstrap(otelTracer) at the top of main, or:
        /// var configuration = Server.Configuration(address: "unix:/run/app/app.sock")
        /// configuration.tracer = InstrumentationSystem.tracer
        /// let server = Server(configuration: configuration) { request in
        ///     try withSpan("load the page") { _ in try request.write("traced") }
        /// }
        /// ```
        public var tracer: (any Tracer)?
        /// Work to do once before serving, such as a database migration: `run()`
        /// calls it after it has the listening socket and before the first
        /// request or worker, in the process that serves or manages the pool —
        /// never in a pool's workers, and not again on a reload. In CGI mode it
        /// runs before the one request. An error it throws stops `run()`, which
        /// rethrows it.
        public var prepare: (@Sendable () throws -> Void)?

        /// The defaults (as the SPEC's initializer has them), with an address
        /// and a threading level.
        public init(address: ListenAddress? = nil, threadingLevel: ThreadingLevel = 1) {
            self.address = address
            self.threadingLevel = threadingLevel
        }
    }
}

extension Duration {
    /// The duration in seconds, as the Double the settings keep.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// The duration in whole nanoseconds, as swift-metrics' timers record it.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
