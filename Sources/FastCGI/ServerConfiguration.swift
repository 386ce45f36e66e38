import CoreMetrics
import Logging

extension Server {
    /// Everything about a server but its handlers, as one value: built up
    /// field by field, read from a configuration file, passed around, with the
    /// times as `Duration`. ``Server/init(factories:configuration:)`` takes it;
    /// the SPEC's initializer with one parameter per setting stays beside it.
    ///
    /// ```swift
    /// var configuration = Server.Configuration()
    /// configuration.address = "unix:/run/app/app.sock"
    /// configuration.workers = 32
    /// configuration.requestTimeout = .seconds(30)
    /// configuration.inputTimeout = .seconds(20)
    /// configuration.monitoring.statusPath = "/status"
    /// let server = Server(factories: [.responder: .type(App.self)], configuration: configuration)
    /// ```
    public struct Configuration: Sendable {
        /// How the server uses threads (default 1).
        public var threadingLevel: ThreadingLevel = 1
        /// Handler threads at levels 1 and 2 (default 10).
        public var workers = 10
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
        /// Bounds on each connection; its timeouts are also here as `Duration`.
        public var connectionLimits = ConnectionLimits()
        /// Ping and status pages; its times are also here as `Duration`.
        public var monitoring = Monitoring()
        /// Where the server logs.
        public var logger = Logger(label: "swift-fcgi")
        /// Whether SIGTERM, SIGINT and SIGUSR1 stop the server (default true;
        /// false when a `ServiceGroup` or the app owns the signals).
        public var handleSignals = true
        /// How long a stop waits for requests in flight (default 10 s).
        public var shutdownTimeout: Duration = .seconds(10)
        /// Worker processes kept by a process manager (0: serve in this process).
        public var processes = 0
        /// With processes: replace a worker past this resident size in bytes.
        public var maxWorkerMemory: Int?
        /// Where the request metrics go (nil: `MetricsSystem.factory`).
        public var metricsFactory: (any MetricsFactory)?

        /// The defaults, as the SPEC's initializer has them.
        public init() {}

        /// Longest a request may run before it is ended with a 504 (nil: no limit).
        public var requestTimeout: Duration? {
            get { monitoring.requestTimeout.map { .seconds($0) } }
            set { monitoring.requestTimeout = newValue?.seconds }
        }

        /// A request running longer is logged as slow (nil: no slow-request log).
        public var slowRequestThreshold: Duration? {
            get { monitoring.slowRequestThreshold.map { .seconds($0) } }
            set { monitoring.slowRequestThreshold = newValue?.seconds }
        }

        /// A kept connection with nothing in flight for this long is closed
        /// (nil: never; default 300 s).
        public var idleTimeout: Duration? {
            get { connectionLimits.idleTimeout.map { .seconds($0) } }
            set { connectionLimits.idleTimeout = newValue?.seconds }
        }

        /// A connection whose peer takes no output for this long is closed and
        /// its requests aborted (nil: never; default 60 s).
        public var sendTimeout: Duration? {
            get { connectionLimits.sendTimeout.map { .seconds($0) } }
            set { connectionLimits.sendTimeout = newValue?.seconds }
        }

        /// A request whose body stops arriving for this long is ended with a 408
        /// (nil: never; default 60 s).
        public var inputTimeout: Duration? {
            get { connectionLimits.inputTimeout.map { .seconds($0) } }
            set { connectionLimits.inputTimeout = newValue?.seconds }
        }
    }

    /// Creates a server from a ``Configuration``.
    public convenience init(factories handlers: [Role: HandlerFactory], configuration: Configuration) {
        self.init(
            factories: handlers, maxRequests: configuration.maxRequests, params: configuration.params,
            requestType: configuration.requestType, threadingLevel: configuration.threadingLevel,
            workers: configuration.workers, address: configuration.address, limits: configuration.limits,
            connectionLimits: configuration.connectionLimits, logger: configuration.logger,
            shutdownTimeout: configuration.shutdownTimeout.seconds, handleSignals: configuration.handleSignals,
            monitoring: configuration.monitoring, activationSocketName: configuration.activationSocketName,
            socketPermissions: configuration.socketPermissions, processes: configuration.processes,
            maxWorkerMemory: configuration.maxWorkerMemory, metricsFactory: configuration.metricsFactory)
    }

    /// This server's settings as a ``Configuration`` (to start a similar one).
    public var configuration: Configuration {
        var configuration = Configuration()
        configuration.threadingLevel = threadingLevel
        configuration.workers = workers
        configuration.address = address
        configuration.socketPermissions = socketPermissions
        configuration.activationSocketName = activationSocketName
        configuration.maxRequests = maxRequests
        configuration.params = params
        configuration.requestType = requestType
        configuration.limits = limits
        configuration.connectionLimits = connectionLimits
        configuration.monitoring = monitoring
        configuration.logger = logger
        configuration.handleSignals = handleSignals
        configuration.shutdownTimeout = .seconds(shutdownTimeout)
        configuration.processes = processes
        configuration.maxWorkerMemory = maxWorkerMemory
        configuration.metricsFactory = metricsFactory
        return configuration
    }
}

extension Duration {
    /// The duration in seconds, as the Double the settings keep.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
