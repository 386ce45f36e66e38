import FastCGIWire
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The running server: the accept loop, the connections, the request executor and
/// the counters that `maxRequests` and graceful shutdown need. Swift owns every
/// network socket; libfcgi (levels 0 and 1) only ever reads canonical records from
/// a pipe (SPEC §4).
final class Engine: @unchecked Sendable {
    let server: Server
    let listenFD: Int32
    /// Accepts connections ready to serve (non-blocking on a shared socket);
    /// the accept loop's alone.
    private var acceptor: Acceptor
    let executor: any RequestExecutor
    /// Counters for logs and the status page.
    let statistics: ServerStatistics
    /// Slow-request log and request timeout, when ``Monitoring`` asks for them.
    let watchdog: Watchdog?
    /// Holds parked connections, and reads for connections whose thread runs a
    /// handler.
    let poller: ConnectionPoller
    /// Sends the output that connections queued for slow readers.
    let flusher: OutputFlusher
    /// The threads that serve connections (only while they have work).
    private let connectionThreads: ThreadPool
    /// How long a stop waits for connections that have not sent a request yet.
    static let freshGrace = 0.5
    /// Serving threads kept parked for the next connection (and wake-ups kept).
    static let idleServingThreads = 8
    /// What a serving thread needs (a wake-up, a read buffer), reused from
    /// connection to connection.
    private let spareKits = Guarded<[ServingKit]>([])
    /// The roles the application handles, for each connection's machine.
    let roles: Set<Role>
    /// The answers to `FCGI_GET_VALUES`, for each connection's machine: read
    /// once, so a connection made under ``state`` takes no server lock.
    let managementValues: [String: String]
    private let allowList: WebServerAllowList
    /// Wakes the accept loop for ``stop()``.
    private let stopWakeup: Wakeup

    private struct State {
        var connections: [Int: Connection] = [:]
        var nextConnection = 0
        var inFlight = 0
        var started = 0
        var stopping = false
        /// Connections that have not started a request yet. Each may still bring
        /// one: with `maxRequests`, no more are accepted than the requests left,
        /// so a fresh connection is never accepted only to be turned away (other
        /// processes on the socket take it instead); on a stop, each gets
        /// ``freshGrace`` for its first request.
        var fresh: Set<Int> = []

        func hasRoom(maxRequests: Int) -> Bool { maxRequests == 0 || started + fresh.count < maxRequests }
    }

    private let state = Guarded(State())

    init(server: Server, listenFD: Int32) throws {
        self.server = server
        self.listenFD = listenFD
        roles = Set(server.handlers.keys)
        managementValues = server.managementValues
        statistics = ServerStatistics(poolSlot: server.state.withLock { $0.poolSlot }, metrics: server.metrics)
        // A quiet connection's read gives up after `linger` (then it is parked).
        acceptor = Acceptor(listening: listenFD, receiveTimeout: Connection.linger)
        allowList = WebServerAllowList(getenv("FCGI_WEB_SERVER_ADDRS").map { String(cString: $0) })
        // A TCP listener reachable from other machines with no allow list lets any
        // peer that can connect send params the app trusts because "the web server
        // set them" (REMOTE_USER, HTTPS, REMOTE_ADDR): say so at start.
        if !allowList.restricts && !Socket.isLocalOnly(listenFD) {
            server.logger.warning(
                "the FastCGI port is reachable from other machines and FCGI_WEB_SERVER_ADDRS is not set: any peer that can connect can send any params (REMOTE_USER, HTTPS, REMOTE_ADDR) the app trusts. Set FCGI_WEB_SERVER_ADDRS to the web server's address, or listen on 127.0.0.1 or a unix socket"
            )
        }
        watchdog = server.monitoring.watchesRequests ? try Watchdog(monitoring: server.monitoring, statistics: statistics) : nil
        stopWakeup = try Wakeup()
        switch server.threadingLevel {
        case _ where server.hasAsyncHandlers: executor = SwiftExecutor(server: server)
        case .single: executor = try LibFCGIWorkerPool(server: server, size: 1)
        case .perConnection: executor = try LibFCGIWorkerPool(server: server, size: server.workers)
        case .multiplexed: executor = SwiftExecutor(server: server)
        }
        // A serving thread also runs handlers (a request whose input is complete):
        // a worker's stack. Few are kept idle: an idle connection is parked, not served.
        // At most so many serve connections that have no request in flight (new
        // ones, idle ones with a new request): a burst of connects waits its
        // turn instead of adding a thread each. One whose requests run is taken
        // up at once whatever the count: a handler may be waiting for its input.
        connectionThreads = ThreadPool(
            keepIdle: Self.idleServingThreads,
            maxThreads: server.threadingLevel == .multiplexed ? 256 : max(64, 4 * server.workers))
        // Each connection knows its engine: the poller needs no reference to this
        // one (so it is made here, complete, with the rest).
        poller = try ConnectionPoller(idleTimeout: server.connectionLimits.idleTimeout, logger: server.logger) {
            connection, idledOut in
            connection.engine.takeUp(connection, idledOut: idledOut)
        }
        let statistics = statistics
        flusher = try OutputFlusher(sendTimeout: server.connectionLimits.sendTimeout, logger: server.logger) {
            statistics.count(.sendTimeout)
        }
        FileLimits.raiseOpenFiles(toServe: server.connectionLimits.maxConnections, logger: server.logger)
    }

    /// Accepts connections until stopped, then drains and returns.
    func run() {
        while !isStopping && acceptNext() {}
        drainAndStop()
    }

    /// Waits for the next connection and starts serving it; false once the
    /// engine stops (or the listening socket fails).
    private func acceptNext() -> Bool {
        if server.maxRequests > 0 {
            // Every request left is spoken for: wait for one to start (or a
            // fresh connection to close), or for the stop.
            _ = state.wait(until: { $0.stopping || $0.hasRoom(maxRequests: server.maxRequests) }) { _ in () }
            if isStopping { return false }
        }
        let ready: [Bool]
        do {
            ready = try Socket.waitReadable(listening: listenFD, or: stopWakeup)
        } catch {
            server.logger.error("waiting on the listening socket failed: \(error)")
            return false
        }
        if ready[1] { return false }
        guard ready[0] else { return true }
        do {
            // One at a time: processes sharing the socket (a pool's workers) each
            // take their turn.
            let accepted = try acceptor.accept()
            admit(accepted.descriptor, from: accepted.peer)
        } catch {
            if error.wouldBlock || error.code == ECONNABORTED { return true }
            server.logger.warning("accept failed: \(error)")
            // Out of descriptors: give the connections a moment to close some.
            if error.code == EMFILE || error.code == ENFILE { MonotonicClock.sleep(seconds: 0.01) }
        }
        return true
    }

    /// Registers a new connection and serves it, unless the address is not
    /// allowed or too many are open (then `descriptor` closes with its owner).
    private func admit(_ descriptor: FileDescriptor, from peer: PeerAddress) {
        guard allowList.allows(peer) else {
            server.logger.warning("refused a connection from \(peer): not in FCGI_WEB_SERVER_ADDRS")
            return
        }
        let connection = state.withLock { s -> Connection? in
            guard s.connections.count < server.connectionLimits.maxConnections else { return nil }
            s.nextConnection += 1
            s.fresh.insert(s.nextConnection)
            let connection = Connection(descriptor: descriptor, number: s.nextConnection, peer: peer, engine: self)
            s.connections[s.nextConnection] = connection
            return connection
        }
        guard let connection else {
            statistics.count(.limit)
            server.logger.warning("refused a connection: \(server.connectionLimits.maxConnections) connections already open")
            return
        }
        statistics.acceptedConnections.increment()
        statistics.openConnections.increment()
        // Served on a pool thread while it has work; parked when idle (at
        // every level: an idle connection must not keep the next one waiting).
        serve(connection)
    }

    /// The stop: no new connections; idle ones close now, busy ones after their
    /// requests (bounded by the shutdown timeout); then the threads end.
    private func drainAndStop() {
        let connections = state.withLock { s in
            s.stopping = true
            return Array(s.connections.values)
        }
        for connection in connections { connection.drain() }
        // A connection accepted just before the stop has its first request on the
        // way (a web server sends it right after connecting): closing it unread
        // would fail that request. It gets a moment; then it is closed too.
        let stillFresh =
            state.wait(until: { $0.fresh.isEmpty }, timeout: Self.freshGrace) { _ in [Connection]() }
            ?? state.withLock { s in s.fresh.compactMap { s.connections[$0] } }
        for connection in stillFresh { connection.drain(evenIfFresh: true) }
        let drained = state.wait(until: { $0.inFlight == 0 }, timeout: server.shutdownTimeout) { _ in true }
        if drained == nil {
            server.logger.warning("requests still running after the \(server.shutdownTimeout) s shutdown timeout")
        } else if !flusher.waitUntilSent(timeout: server.shutdownTimeout) {
            server.logger.warning("output still queued for slow readers after the \(server.shutdownTimeout) s shutdown timeout")
        }
        executor.shutdown()
        watchdog?.stop()
        poller.stop()
        flusher.stop()
        connectionThreads.shutdown()
    }

    /// Serves `connection` on a pool thread with a wake-up and a buffer of its own.
    private func serve(_ connection: Connection, idledOut: Bool = false) {
        connectionThreads.run(urgent: connection.hasRequestsInFlight) { [self] in
            let kit = spareKits.withLock { $0.popLast() } ?? (try? ServingKit())
            guard let kit else {
                server.logger.error("cannot serve connection \(connection.number): no descriptor for its wake-up")
                connection.abandon()
                return
            }
            connection.serve(wakeup: kit.wakeup, buffer: &kit.buffer, idledOut: idledOut)
            // As many kept as threads are: more are let go (their descriptors with them).
            spareKits.withLock { if $0.count < Self.idleServingThreads { $0.append(kit) } }
        }
    }

    /// Takes up a parked connection (input arrived, it idled out, or it must
    /// drain), unless another caller already did.
    func takeUp(_ connection: Connection, idledOut: Bool = false) {
        guard connection.unpark() else { return }
        serve(connection, idledOut: idledOut)
    }

    var isStopping: Bool { state.withLock { $0.stopping } }

    /// Makes ``run()`` stop accepting (any thread).
    func stop() {
        state.withLock { $0.stopping = true }
        stopWakeup.signal()
    }

    /// Whether a request may start, and whether it is the last one.
    enum Admission {
        case admitted(last: Bool)
        /// `maxRequests` were started already.
        case overLimit
    }

    /// Counts a request on connection `number` in, unless `maxRequests` were
    /// started already: the server initiates no more than that many, exactly.
    func admitRequest(on number: Int) -> Admission {
        let admission = state.withLock { s -> Admission in
            s.fresh.remove(number)
            guard server.maxRequests == 0 || s.started < server.maxRequests else { return .overLimit }
            s.inFlight += 1
            s.started += 1
            return .admitted(last: server.maxRequests > 0 && s.started == server.maxRequests)
        }
        if case .admitted = admission { statistics.requestStarted() }
        return admission
    }

    /// The open connections as the full status page shows them, by number.
    var connectionSnapshots: [ConnectionSnapshot] {
        let connections = state.withLock { s in Array(s.connections.values) }
        return connections.map(\.snapshot).sorted { $0.number < $1.number }
    }

    /// A request's END_REQUEST was written (its statistics counted it already).
    func requestFinished() {
        state.withLock { $0.inFlight -= 1 }
    }

    func connectionClosed(_ connection: Connection) {
        statistics.openConnections.subtract(1, ordering: .relaxed)
        state.withLock { s in
            _ = s.connections.removeValue(forKey: connection.number)
            s.fresh.remove(connection.number)
        }
    }
}

/// A serving thread's wake-up and read buffer (used by one thread at a time).
final class ServingKit: @unchecked Sendable {
    let wakeup: Wakeup
    /// Left uninitialised: a read touches only the pages it fills.
    @exclusivity(unchecked) var buffer = [UInt8](unsafeUninitializedCapacity: 65536) { _, count in count = 65536 }

    init() throws(SystemError) {
        wakeup = try Wakeup()
    }
}
