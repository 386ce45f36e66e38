import CoreMetrics
import FastCGIWire
import Logging

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
    /// When greater than 0, ``run()`` returns after this many requests were initiated.
    public let maxRequests: Int
    /// Overrides for the answers to `FCGI_GET_VALUES` (see ``managementValues``).
    public let params: [String: String]?
    /// The request class made for each request (``Request`` or a subclass such as
    /// ``GZipRequest``).
    public let requestType: Request.Type
    /// How the server uses threads.
    public let threadingLevel: ThreadingLevel
    /// Number of worker threads at levels 1 and 2 (default 10).
    public let workers: Int
    /// Where to listen; nil means fd 0 (spawn-fcgi) or, failing that, CGI.
    public let address: ListenAddress?
    /// Memory bounds for each request.
    public let limits: RequestLimits
    /// Bounds on each connection (params size, requests in flight, idle time).
    public let connectionLimits: ConnectionLimits
    /// Where the server logs; metadata carries the request id.
    public let logger: Logger
    /// How long ``run()`` waits for requests in flight when it stops (seconds).
    public let shutdownTimeout: Double
    /// Whether SIGTERM, SIGINT and SIGUSR1 stop the server as ``exit()`` does
    /// (default true; turn off if the application handles them itself).
    public let handleSignals: Bool
    /// Ping and status pages, slow-request log, request timeout (all off by default).
    public let monitoring: Monitoring
    /// With systemd socket activation and several sockets passed, the name
    /// (`FileDescriptorName=`, seen in `LISTEN_FDNAMES`) of the one to serve; nil
    /// takes the first.
    public let activationSocketName: String?
    /// The mode, owner and group of a unix socket the server creates.
    public let socketPermissions: SocketPermissions

    /// Worker processes kept by a process manager (0: serve in this process).
    public let processes: Int
    /// With processes: a worker whose resident memory passes this many bytes is
    /// replaced (nil: no limit).
    public let maxWorkerMemory: Int?
    /// Where the request metrics go (swift-metrics; see docs/DEPLOYMENT.md):
    /// `http.server.request.duration`, `http.server.active_requests` and
    /// `fastcgi.server.errors`. Nil uses `MetricsSystem.factory`, which records
    /// nothing unless the app bootstrapped a backend (swift-prometheus, swift-otel).
    public let metricsFactory: (any MetricsFactory)?
    /// The metrics made from that factory; nil when it records nothing.
    let metrics: RequestMetrics?
    let state = Guarded(RunState())

    /// Creates a server.
    ///
    /// - Parameters:
    ///   - handlers: the handler for each role, as a factory (a type or a closure).
    ///   - maxRequests: stop after this many requests (0: never).
    ///   - params: answers to `FCGI_GET_VALUES` that replace the defaults.
    ///   - requestType: the request class to instantiate.
    ///   - threadingLevel: 0, 1 (default) or 2.
    ///   - workers: worker threads at levels 1 and 2.
    ///   - address: where to listen instead of fd 0.
    ///   - limits: memory bounds for each request.
    ///   - connectionLimits: bounds on each connection.
    ///   - logger: where to log (swift-log; its default handler writes to stderr).
    ///   - logLevel: the level to log at, replacing `logger`'s (the original's
    ///     `set_logging(level)`); nil keeps the logger's own (`.info` by default).
    ///   - shutdownTimeout: how long `run()` waits for requests in flight on stop.
    ///   - handleSignals: whether SIGTERM, SIGINT and SIGUSR1 stop the server.
    ///   - monitoring: ping and status pages, slow-request log, request timeout.
    ///   - activationSocketName: which socket-activated socket to serve.
    ///   - socketPermissions: the mode, owner and group of a unix socket at
    ///     `address` (so nginx can connect without a world-writable socket).
    ///   - processes: with N above 0, `run()` becomes a process manager: it keeps
    ///     N worker processes of this binary serving the listening socket, replaces
    ///     one that dies or reaches `maxRequests`, reloads on SIGHUP or SIGUSR2, and
    ///     runs no handler itself (see docs/DEPLOYMENT.md).
    ///   - maxWorkerMemory: with processes, replace a worker whose resident memory
    ///     passes this many bytes.
    ///   - metricsFactory: where the request metrics go (nil: `MetricsSystem.factory`).
    public init(
        factories handlers: [Role: HandlerFactory],
        maxRequests: Int = 0,
        params: [String: String]? = nil,
        requestType: Request.Type = Request.self,
        threadingLevel: ThreadingLevel = 1,
        workers: Int = 10,
        address: ListenAddress? = nil,
        limits: RequestLimits = RequestLimits(),
        connectionLimits: ConnectionLimits = ConnectionLimits(),
        logger: Logger = Logger(label: "swift-fcgi"),
        logLevel: Logger.Level? = nil,
        shutdownTimeout: Double = 10,
        handleSignals: Bool = true,
        monitoring: Monitoring = Monitoring(),
        activationSocketName: String? = nil,
        socketPermissions: SocketPermissions = SocketPermissions(),
        processes: Int = 0,
        maxWorkerMemory: Int? = nil,
        metricsFactory: (any MetricsFactory)? = nil
    ) {
        self.metricsFactory = metricsFactory
        metrics = RequestMetrics(factory: metricsFactory ?? MetricsSystem.factory)
        self.processes = max(0, processes)
        self.maxWorkerMemory = maxWorkerMemory
        self.socketPermissions = socketPermissions
        self.monitoring = monitoring
        self.activationSocketName = activationSocketName
        self.connectionLimits = connectionLimits
        self.handleSignals = handleSignals
        self.handlers = handlers
        self.maxRequests = maxRequests
        self.params = params
        self.requestType = requestType
        self.threadingLevel = threadingLevel
        self.workers = threadingLevel == .single ? 1 : max(1, workers)
        self.address = address
        self.limits = limits
        var logger = logger
        if let logLevel { logger.logLevel = logLevel }
        // A pool's workers share the master's stderr: say which one speaks.
        if PoolWorker.isThisProcess { logger[metadataKey: "worker"] = "\(ProcessSpawner.currentPID)" }
        self.logger = logger
        self.shutdownTimeout = shutdownTimeout
    }

    /// Creates a server from handler types: a new instance of the type serves each
    /// request. Parameters as in ``init(factories:maxRequests:params:requestType:threadingLevel:workers:address:limits:connectionLimits:logger:logLevel:shutdownTimeout:handleSignals:monitoring:activationSocketName:socketPermissions:processes:maxWorkerMemory:metricsFactory:)``.
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
        shutdownTimeout: Double = 10
    ) {
        self.init(
            factories: handlers.mapValues { HandlerFactory.type($0) }, maxRequests: maxRequests, params: params,
            requestType: requestType, threadingLevel: threadingLevel, workers: workers, address: address,
            limits: limits, logger: logger, shutdownTimeout: shutdownTimeout)
    }

    /// Creates a server that answers every responder request with `responder`.
    public convenience init(
        threadingLevel: ThreadingLevel = 1,
        address: ListenAddress? = nil,
        responder: @escaping @Sendable (Request) throws -> Void
    ) {
        self.init(factories: [.responder: .closure(responder)], threadingLevel: threadingLevel, address: address)
    }

    /// Creates a server that answers every responder request with the async
    /// `responder`.
    ///
    /// ```swift
    /// let server = Server(address: "127.0.0.1:9000", asyncResponder: { request in
    ///     try await Task.sleep(for: .milliseconds(5))
    ///     try request.write("Hello!\n")
    /// })
    /// ```
    public convenience init(
        threadingLevel: ThreadingLevel = 1,
        address: ListenAddress? = nil,
        asyncResponder responder: @escaping @Sendable (Request) async throws -> Void
    ) {
        self.init(factories: [.responder: .async(responder)], threadingLevel: threadingLevel, address: address)
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
            }
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
            runCGI()
            return
        }
        // The listening socket has one owner from here: the process manager, or
        // the engine, which closes it (and removes the socket file it made) the
        // moment it stops accepting.
        let madeFile = created
        let removeSocketFile: @Sendable () -> Void = { if let madeFile { Socket.removeFile(madeFile) } }
        if processes > 0 && worker == nil {
            try runProcessManager(listening: FileDescriptor(adopting: listenFD), whenClosed: removeSocketFile)
            return
        }
        let engine = try Engine(
            server: self, listener: FileDescriptor(adopting: listenFD), sole: !shared, whenClosed: removeSocketFile)
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
    /// let server = Server(address: "127.0.0.1:9000", asyncResponder: { request in try request.write("hi") })
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
            throw ServerError("cannot start the process manager: \(error)")
        }
        let stopNow = state.withLock { s in
            s.pool = manager
            return s.stopping
        }
        if stopNow { manager.stop() }
        do {
            try manager.run()
        } catch {
            throw ServerError("process manager: \(error)")
        }
    }

    /// Whether ``exit()`` was called or ``maxRequests`` was reached.
    public var isStopping: Bool { state.withLock { $0.stopping } }

    /// Runs the handler for the role of `transport`'s request (on the thread that
    /// serves it).
    func serve(_ transport: any RequestTransport, logger connectionLogger: Logger? = nil) {
        guard let factory = handlers[transport.role] else {
            // The protocol firewall answers unknown roles; only CGI mode gets here.
            (connectionLogger ?? logger).warning("no handler for role \(transport.role)")
            return
        }
        let request = requestType.init(RequestContext(transport: transport, limits: limits, logger: connectionLogger ?? logger))
        let started = metrics?.started()
        factory(request)
        request.closeOutput(pushingTransport: false)
        if let started { record(request, since: started) }
    }

    /// Runs the async handler for `transport`'s request in the calling task.
    func serve(_ transport: any RequestTransport, logger connectionLogger: Logger) async {
        guard let factory = handlers[transport.role] else { return }
        let request = requestType.init(RequestContext(transport: transport, limits: limits, logger: connectionLogger))
        let started = metrics?.started()
        await factory(request)
        request.closeOutput(pushingTransport: false)
        if let started { record(request, since: started) }
    }

    private func record(_ request: Request, since start: ContinuousClock.Instant) {
        metrics?.finished(
            since: start, method: request.environ["REQUEST_METHOD"], status: request.responseStatusCode,
            handlerError: request.handlerFailure)
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
}
