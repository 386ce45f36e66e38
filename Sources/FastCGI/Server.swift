import CoreMetrics
import FastCGIWire
import Logging
import Tracing

/// The main loop of a FastCGI application (the original module's `fcgi.Server`).
///
/// It accepts connections from the web server and runs a new handler for each
/// request:
///
/// ```swift
/// struct Hello: Handler {
///     func process(_ request: Request) throws {
///         try request.setHeader("Content-Type", "text/plain")
///         try request.write("Hello, world!\n")
///     }
/// }
/// try Server(handlers: [.responder: Hello.self]).run()
/// ```
///
/// Given an ``address`` it listens there; started by systemd socket activation
/// (`LISTEN_PID`/`LISTEN_FDS`) it serves the passed socket (fd 3); started by
/// spawn-fcgi (or anything that passes a listening socket as fd 0) it serves that
/// socket; started as a plain CGI program it runs the responder once over the
/// environment, stdin and stdout.
public final class Server: Sendable {
    /// The handler for each role; a request for a role not here is refused.
    public let handlers: [Role: HandlerFactory]
    /// ``handlers`` by role number (1–3): found per request without hashing.
    private let handlerByRole: [HandlerFactory?]

    /// The handler for `role`, if the server has one.
    func handler(for role: Role) -> HandlerFactory? {
        let index = Int(role.rawValue)
        return index < handlerByRole.count ? handlerByRole[index] : nil
    }
    /// Everything about the server but its handlers, as given (``workers`` is 1
    /// at level 0).
    public let configuration: Configuration
    /// When greater than 0, ``run()`` returns after this many requests were initiated.
    public var maxRequests: Int { configuration.maxRequests }
    /// Overrides for the answers to `FCGI_GET_VALUES` (see ``managementValues``).
    public var params: [String: String]? { configuration.params }
    /// The request class made for each request (``Request`` or a subclass such as
    /// ``GZipRequest``).
    public var requestType: Request.Type { configuration.requestType }
    /// How the server uses threads.
    public var threadingLevel: ThreadingLevel { configuration.threadingLevel }
    /// Number of worker threads at levels 1 and 2 (default 10; 1 at level 0).
    public let workers: Int
    /// Where to listen; nil means fd 0 (spawn-fcgi) or, failing that, CGI.
    public var address: ListenAddress? { configuration.address }
    /// Memory bounds for each request.
    public let limits: RequestLimits
    /// Bounds on each connection (params size, requests in flight, idle time).
    public let connectionLimits: ConnectionLimits
    /// Where the server logs; metadata carries the request id (and, in a pool's
    /// worker, the worker's pid).
    public let logger: Logger
    /// How long ``run()`` waits for requests in flight when it stops.
    public var shutdownTimeout: Duration { configuration.shutdownTimeout }
    /// ``shutdownTimeout`` in seconds, as the engine's waits take it.
    let shutdownSeconds: Double
    /// Whether SIGTERM, SIGINT and SIGUSR1 stop the server as ``exit()`` does.
    public var handleSignals: Bool { configuration.handleSignals }
    /// Ping and status pages, slow-request log, request timeout (all off by default).
    public let monitoring: Monitoring
    /// At most this many async handlers at once (nil: no bound).
    public var asyncHandlerLimit: Int? { configuration.asyncHandlerLimit }
    /// With systemd socket activation and several sockets passed, the name
    /// (`FileDescriptorName=`, seen in `LISTEN_FDNAMES`) of the one to serve; nil
    /// takes the first.
    public var activationSocketName: String? { configuration.activationSocketName }
    /// The mode, owner and group of a unix socket the server creates.
    public var socketPermissions: SocketPermissions { configuration.socketPermissions }
    /// Worker processes kept by a process manager (0: serve in this process).
    public let processes: Int
    /// With processes: a worker whose resident memory passes this many bytes is
    /// replaced (nil: no limit).
    public var maxWorkerMemory: Int? { configuration.maxWorkerMemory }
    /// Where the request metrics go (swift-metrics; see docs/DEPLOYMENT.md):
    /// `http.server.request.duration`, `http.server.active_requests` and
    /// `fastcgi.server.errors`. Nil uses `MetricsSystem.factory`, which records
    /// nothing unless the app bootstrapped a backend (swift-prometheus, swift-otel).
    public var metricsFactory: (any MetricsFactory)? { configuration.metricsFactory }
    /// The metrics made from that factory; nil when it records nothing.
    let metrics: RequestMetrics?
    /// Who gets a server span per request; nil: no span is made.
    let tracer: (any Tracer)?
    /// Whether metrics, the access log or a tracer record each request (read
    /// per request: one flag, not three optionals of existentials).
    private let recordsRequests: Bool
    /// ``Configuration/fileOffload``, read per request without copying the
    /// configuration.
    private let fileOffload: FileOffload?
    /// The access log's writer, when ``Configuration/accessLog`` is set.
    let accessLog: AccessLogWriter?
    let state = Guarded(RunState())

    /// Whether this process is a worker that a process manager started
    /// (``Configuration/processes``): code before `run()` runs in the manager
    /// and again in each worker, so work to do once per pool (a database
    /// migration) belongs in ``Configuration/prepare``, or behind this test.
    public static var isPoolWorker: Bool { PoolWorker.isThisProcess }

    /// Creates a server from its handlers and a ``Configuration``.
    ///
    /// ```swift
    /// var configuration = Server.Configuration()
    /// configuration.address = "127.0.0.1:9000"
    /// configuration.workers = 32
    /// let server = Server(factories: [.responder: .closure { try $0.write("hi") }], configuration: configuration)
    /// ```
    ///
    /// - Parameters:
    ///   - handlers: the handler for each role, as a factory (a type or a closure).
    ///   - configuration: everything else; the defaults serve fd 0 (spawn-fcgi),
    ///     a socket systemd passed, or CGI, at threading level 1.
    public init(factories handlers: [Role: HandlerFactory], configuration: Configuration = Configuration()) {
        self.handlers = handlers
        handlerByRole = (0...3).map { number in Role(rawValue: UInt16(number)).flatMap { handlers[$0] } }
        self.configuration = configuration
        metrics = RequestMetrics(factory: configuration.metricsFactory ?? MetricsSystem.factory)
        tracer = Self.tracer(configuration)
        fileOffload = configuration.fileOffload
        accessLog = configuration.accessLog.map(AccessLogWriter.init)
        recordsRequests = metrics != nil || accessLog != nil || tracer != nil
        processes = max(0, configuration.processes)
        monitoring = configuration.monitoring
        connectionLimits = configuration.connectionLimits
        workers = configuration.threadingLevel == .single ? 1 : max(1, configuration.workers)
        limits = configuration.limits
        shutdownSeconds = configuration.shutdownTimeout.seconds
        var logger = configuration.logger
        // A pool's workers share the master's stderr: say which one speaks.
        if PoolWorker.isThisProcess { logger[metadataKey: "worker"] = "\(ProcessSpawner.currentPID)" }
        self.logger = logger
    }

    /// Creates a server from handler types, as the original module's `Server`:
    /// a new instance of the type serves each request. Every other setting is a
    /// ``Configuration``'s.
    ///
    /// ```swift
    /// try Server(handlers: [.responder: App.self], threadingLevel: 2).run()
    /// ```
    public convenience init(
        handlers: [Role: any Handler.Type],
        maxRequests: Int = 0,
        params: [String: String]? = nil,
        requestType: Request.Type = Request.self,
        threadingLevel: ThreadingLevel = 1,
        workers: Int = 10,
        address: ListenAddress? = nil,
        limits: RequestLimits = RequestLimits(),
        logger: Logger = Logger(label: "swift-fcgi"),
        shutdownTimeout: Duration = .seconds(10)
    ) {
        var configuration = Configuration(address: address, threadingLevel: threadingLevel)
        configuration.maxRequests = maxRequests
        configuration.params = params
        configuration.requestType = requestType
        configuration.workers = workers
        configuration.limits = limits
        configuration.logger = logger
        configuration.shutdownTimeout = shutdownTimeout
        self.init(factories: handlers.mapValues { HandlerFactory.type($0) }, configuration: configuration)
    }

    /// Creates a server that answers every responder request with `responder`.
    ///
    /// ```swift
    /// let server = Server(configuration: .init(address: "127.0.0.1:9000")) { request in
    ///     try request.write("Hello!\n")
    /// }
    /// ```
    public convenience init(
        configuration: Configuration = Configuration(),
        responder: @escaping @Sendable (Request) throws -> Void
    ) {
        self.init(factories: [.responder: .closure(responder)], configuration: configuration)
    }

    /// Creates a server that answers every responder request with the async
    /// `responder`.
    ///
    /// ```swift
    /// let server = Server(configuration: .init(address: "127.0.0.1:9000"), asyncResponder: { request in
    ///     try await Task.sleep(for: .milliseconds(5))
    ///     try request.write("Hello!\n")
    /// })
    /// ```
    public convenience init(
        configuration: Configuration = Configuration(),
        asyncResponder responder: @escaping @Sendable (Request) async throws -> Void
    ) {
        self.init(factories: [.responder: .async(responder)], configuration: configuration)
    }

    /// The answers to `FCGI_GET_VALUES`: `FCGI_MAX_CONNS`, `FCGI_MAX_REQS` and
    /// `FCGI_MPXS_CONNS` by threading level (1/1/0 at level 0; the worker count and 0
    /// at level 1; the worker count and 1 at level 2), overridden and extended by
    /// ``params``.
    public var managementValues: [String: String] {
        var values: [String: String]
        switch threadingLevel {
        case .single: values = ["FCGI_MAX_CONNS": "1", "FCGI_MAX_REQS": "1", "FCGI_MPXS_CONNS": "0"]
        case .perConnection: values = ["FCGI_MAX_CONNS": "\(workers)", "FCGI_MAX_REQS": "\(workers)", "FCGI_MPXS_CONNS": "0"]
        case .multiplexed: values = ["FCGI_MAX_CONNS": "\(workers)", "FCGI_MAX_REQS": "\(workers)", "FCGI_MPXS_CONNS": "1"]
        }
        // A pool's workers answer for the pool: each web server connection may
        // land on any of them.
        let poolSize = state.withLock { $0.poolSize }
        if poolSize > 1 {
            for name in ["FCGI_MAX_CONNS", "FCGI_MAX_REQS"] {
                values[name] = values[name].flatMap { Int($0) }.map { "\($0 * poolSize)" }
            }
        }
        for (name, value) in params ?? [:] { values[name] = value }
        return values
    }

    /// The main loop: serves requests until ``exit()`` is called or ``maxRequests``
    /// were initiated, then waits up to ``shutdownTimeout`` for requests in flight
    /// and returns. In CGI mode it serves the one request and returns.
    ///
    /// Swift owns every network socket: a pure-Swift parser validates all input and
    /// answers management records; at levels 0 and 1 each request then reaches a
    /// libfcgi worker as a canonical record stream over a pipe (SPEC §4).
    ///
    /// Throws ``ServerError`` when it cannot listen.
    public func run() throws {
        let alreadyStarted = state.withLock { s in
            defer { s.started = true }
            return s.started
        }
        guard !alreadyStarted else { throw ServerError("run() was already called on this server") }
        // Opened now, before the process may drop to another user.
        do { try accessLog?.open() } catch { throw ServerError("access log: \(error)", cause: .permission) }
        Socket.ignoreSIGPIPE()
        let listenFD: Int32
        var created: Socket.FileIdentity?
        // Another process holds the listener too: the pool's master and
        // siblings, or systemd.
        var shared = false
        let worker = PoolWorker.takeFromEnvironment()
        if let worker {
            // Started by a process manager: fd 0 is the pool's listening socket.
            guard LibFCGI.standardInputIsListeningSocket() else {
                throw ServerError("started as a pool worker, but fd 0 is not a listening socket")
            }
            state.withLock { s in
                s.poolSize = worker.poolSize
                s.poolSlot = worker.board
                s.poolMaster = worker.master
            }
            // The master checked it may: the worker serves as the user asked for.
            try Privileges.drop(toUser: configuration.user, group: configuration.group)
            listenFD = 0
            shared = true
        } else if let address {
            listenFD = try Socket.listen(
                on: address, permissions: socketPermissions,
                backlog: connectionLimits.backlog.map { Int32(clamping: $0) } ?? Socket.systemBacklog)
            if case .unix(let path) = address { created = Socket.fileIdentity(path) }
            var bound = address
            if case .tcp(let host, 0) = address, let port = Socket.localPort(listenFD) { bound = .tcp(host: host, port: port) }
            logger.info("listening on \(bound)", metadata: ["threading-level": "\(threadingLevel.rawValue)"])
        } else if let activated = try SocketActivation.listeningSocket(named: activationSocketName) {
            listenFD = activated.fd
            shared = true
            logger.info(
                "listening on the socket systemd passed (fd \(activated.fd)\(activated.name.map { ", \($0)" } ?? ""))",
                metadata: ["threading-level": "\(threadingLevel.rawValue)"])
        } else if LibFCGI.standardInputIsListeningSocket() {
            listenFD = 0
        } else {
            try configuration.prepare?()
            runCGI()
            return
        }
        // The listening socket has one owner from here: the process manager, or
        // the engine, which closes it (and removes the socket file it made) the
        // moment it stops accepting.
        let madeFile = created
        let removeSocketFile: @Sendable () -> Void = { if let madeFile { Socket.removeFile(madeFile) } }
        let listener = FileDescriptor(adopting: listenFD)
        if worker == nil, let prepare = configuration.prepare {
            do {
                try prepare()
            } catch {
                removeSocketFile()  // the listener closes as it goes
                throw error
            }
        }
        if processes > 0 && worker == nil {
            do {
                try Privileges.requireChangeable(user: configuration.user, group: configuration.group)
            } catch {
                removeSocketFile()
                throw error
            }
            try runProcessManager(listening: listener, whenClosed: removeSocketFile)
            return
        }
        if worker == nil {
            // One process: it has its socket; it serves as the user asked for.
            do {
                try Privileges.drop(toUser: configuration.user, group: configuration.group)
            } catch {
                removeSocketFile()
                throw error
            }
        }
        let engine: Engine
        do {
            engine = try Engine(server: self, listener: listener, sole: !shared, whenClosed: removeSocketFile)
        } catch {
            removeSocketFile()  // a failed start leaves no socket file behind
            throw error
        }
        let stopNow = state.withLock { s in
            s.engine = engine
            return s.stopping
        }
        if stopNow { engine.stop() }
        if handleSignals {
            ShutdownSignals.install { [self] number in
                logger.info("signal \(number): stopping")
                exit()
            }
        }
        // Ready only once a stop signal would be heard: a process manager may
        // send one as soon as it hears this.
        worker?.signalReady()
        let notify = worker == nil ? SystemdNotify.fromEnvironment() : nil
        notify?.send("READY=1")
        engine.run()
        notify?.send("STOPPING=1")
    }

    /// ``run()`` from async code: runs it on a thread of its own (it blocks) and
    /// returns when it does. Cancelling the calling task stops the server as
    /// ``exit()`` does: requests in flight finish first.
    ///
    /// ```swift
    /// let server = Server(configuration: .init(address: "127.0.0.1:9000"), asyncResponder: { request in
    ///     try request.write("hi")
    /// })
    /// let serving = Task { try await server.runUntilStopped() }
    /// ```
    public func runUntilStopped() async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
                do {
                    try OSThread.spawn(stackSize: 1 << 20) { [self] in
                        do {
                            try run()
                            done.resume()
                        } catch {
                            done.resume(throwing: error)
                        }
                    }
                } catch {
                    done.resume(throwing: error)
                }
            }
        } onCancel: {
            exit()
        }
    }

    /// Makes ``run()`` return: callable from any thread, a handler included. No new
    /// connections are accepted; requests in flight finish first (up to
    /// ``shutdownTimeout``).
    public func exit() {
        let (engine, pool) = state.withLock { s in
            s.stopping = true
            return (s.engine, s.pool)
        }
        engine?.stop()
        pool?.stop()
    }

    /// Runs the process manager on `listening` until the pool has stopped.
    private func runProcessManager(listening: FileDescriptor, whenClosed: @escaping @Sendable () -> Void) throws {
        let manager: ProcessManager
        do {
            manager = try ProcessManager(
                server: self, listening: listening, size: processes, maxWorkerBytes: maxWorkerMemory,
                whenClosed: whenClosed)
        } catch {
            whenClosed()  // a failed start leaves no socket file behind
            throw ServerError("cannot start the process manager: \(error)", cause: .processManager)
        }
        let stopNow = state.withLock { s in
            s.pool = manager
            return s.stopping
        }
        if stopNow { manager.stop() }
        do {
            try manager.run()
        } catch {
            throw ServerError("process manager: \(error)", cause: .processManager)
        }
    }

    /// Whether ``exit()`` was called or ``maxRequests`` was reached.
    public var isStopping: Bool { state.withLock { $0.stopping } }

    /// Runs the handler for the role of `transport`'s request (on the thread that
    /// serves it).
    func serve(_ transport: any RequestTransport, connection: Int? = nil) {
        guard let factory = handler(for: transport.role) else {
            // The protocol firewall answers unknown roles; only CGI mode gets here.
            logger.warning("no handler for role \(transport.role)")
            return
        }
        let request = makeRequest(transport, connection: connection)
        if let span = request.span {
            InstrumentationContext.$current.withValue(span.context) { factory(request) }
        } else {
            factory(request)
        }
        returned(request)
    }

    /// Runs the async handler for `transport`'s request in the calling task.
    func serve(_ transport: any RequestTransport, connection: Int? = nil) async {
        guard let factory = handler(for: transport.role) else { return }
        let request = makeRequest(transport, connection: connection)
        if let span = request.span {
            await InstrumentationContext.$current.withValue(span.context) { await factory(request) }
        } else {
            await factory(request)
        }
        returned(request)
    }

    /// The request of `transport`, its handler about to run: the clocks of the
    /// metrics and the access log start, and its span.
    private func makeRequest(_ transport: any RequestTransport, connection: Int?) -> Request {
        var handle = Request.Handle(transport: transport, limits: limits, logger: logger, fileOffload: fileOffload)
        handle.connection = connection
        let request = requestType.init(handle)
        guard recordsRequests else { return request }
        if let tracer { request.span = startSpan(for: request, tracer: tracer) }
        request.answering = Request.Answering(
            server: self, started: metrics?.started(), began: accessLog == nil ? nil : ContinuousClock.now)
        return request
    }

    /// The handler returned: the request ends now, or ended at `Request.finish()`
    /// and this was the work after it.
    private func returned(_ request: Request) {
        guard request.isFinished else {
            request.closeOutput(pushingTransport: false)
            answered(request)
            return
        }
        guard let answering = request.answering else { return }
        if let started = answering.started { metrics?.backgroundFinished(since: started) }
        if let accessLog, let began = answering.began { accessLog.record(request, duration: .now - began, background: true) }
    }

    /// The response has ended (the handler returned, or called `Request.finish()`):
    /// the metrics and the access log count the request.
    func answered(_ request: Request) {
        if let span = request.span { endSpan(span, for: request) }
        guard let answering = request.answering else { return }
        if let started = answering.started {
            metrics?.finished(
                since: started, method: request.environ["REQUEST_METHOD"], status: request.responseStatusCode,
                handlerError: request.handlerFailure)
        }
        if let accessLog, let began = answering.began { accessLog.record(request, duration: .now - began) }
    }

    /// Whether any handler is async: the server then runs on the Swift engine.
    var hasAsyncHandlers: Bool { handlers.values.contains { $0.isAsync } }
}

/// What the run loop shares between threads.
struct RunState {
    var started = false
    var stopping = false
    var engine: Engine?
    /// The process manager, when this process is a pool's master.
    var pool: ProcessManager?
    /// Workers in the pool this process belongs to (1: no pool).
    var poolSize = 1
    /// The pool's board and this worker's slot on it.
    var poolSlot: (board: PoolBoard, slot: Int)?
    /// The pool's master, when this process is one of its workers.
    var poolMaster: Int32?
}
