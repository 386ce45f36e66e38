import FastCGIWire
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The running server: the acceptors, the connections, the request executor and
/// the counters that `maxRequests` and graceful shutdown need. Swift owns every
/// network socket; libfcgi (levels 0 and 1) only ever reads canonical records from
/// a pipe (SPEC §4).
final class Engine: @unchecked Sendable {
    let server: Server
    let listenFD: Int32
    /// The listening socket, owned by the engine (the acceptors use it; the stop
    /// closes it once they left): closed the moment the engine stops
    /// accepting, so a web server is refused at once and fails over instead of
    /// queueing connections no one will serve.
    private var listener: FileDescriptor?
    /// Called once the listener is closed (removes the unix socket file the
    /// server made).
    private let listenerClosed: @Sendable () -> Void
    /// Whether this process alone holds the listener, so the connections queued
    /// on it at the stop are its to serve (a pool's workers and a socket systemd
    /// holds leave them to the others).
    private let soleListener: Bool
    /// Accepts connections ready to serve (non-blocking on a shared socket),
    /// for every acceptor thread.
    private let acceptor: Acceptor
    let executor: any RequestExecutor
    /// Counters for logs and the status page.
    let statistics: ServerStatistics
    /// Slow-request log and request timeout, when ``Monitoring`` asks for them.
    let watchdog: Watchdog?
    /// A pool worker's heartbeat and figures on the pool's board.
    private var reporter: PoolReporter?
    /// Holds parked connections, and reads for connections whose thread runs a
    /// handler.
    let poller: ConnectionPoller
    /// Sends the output that connections queued for slow readers.
    let flusher: OutputFlusher
    /// Memory the bodies being gathered share past each one's own
    /// (``RequestLimits/sharedBodyMemory``).
    let bodyMemory: SharedMemory
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
    /// Wakes the acceptors and `run()` for ``stop()``.
    private let stopWakeup: Wakeup

    private struct State {
        var connections: [Int: Connection] = [:]
        var nextConnection = 0
        var inFlight = 0
        /// Handlers still running after their request ended (`Request.finish()`).
        var background = 0
        var started = 0
        var stopping = false
        /// Connections that have not started a request yet. Each may still bring
        /// one: with `maxRequests`, no more are accepted than the requests left,
        /// so a fresh connection is never accepted only to be turned away (other
        /// processes on the socket take it instead); on a stop, each gets
        /// ``freshGrace`` for its first request.
        var fresh: Set<Int> = []
        /// Threads waiting for a connection (``acceptLoop()``): each serves the
        /// one it takes.
        var acceptors = 0
        /// Connections the acceptors may take under `maxRequests`: each waiting
        /// one holds a place, as a fresh connection does.
        var reserved = 0

        func hasRoom(maxRequests: Int) -> Bool {
            maxRequests == 0 || started + fresh.count + reserved < maxRequests
        }
    }

    private let state = Guarded(State())

    init(
        server: Server, listener: FileDescriptor, sole: Bool = true, whenClosed: @escaping @Sendable () -> Void = {}
    ) throws {
        self.server = server
        self.listener = listener
        soleListener = sole
        listenFD = listener.raw
        listenerClosed = whenClosed
        roles = Set(server.handlers.keys)
        managementValues = server.managementValues
        statistics = ServerStatistics(metrics: server.metrics)
        bodyMemory = SharedMemory(bytes: server.limits.sharedBodyMemory)
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
        poller = try ConnectionPoller(idleTimeout: server.connectionLimits.idleTimeout?.seconds, logger: server.logger) {
            connection, idledOut in
            connection.engine.takeUp(connection, idledOut: idledOut)
        }
        let statistics = statistics
        flusher = try OutputFlusher(sendTimeout: server.connectionLimits.sendTimeout?.seconds, logger: server.logger) {
            statistics.count(.sendTimeout)
        }
        FileLimits.raiseOpenFiles(toServe: server.connectionLimits.maxConnections, logger: server.logger)
        if let (pool, master) = server.state.withLock({ s in s.poolSlot.map { ($0, s.poolMaster) } }) {
            let executor = executor
            reporter = try PoolReporter(
                board: pool.board, slot: pool.slot, master: master,
                masterGone: { [server] master in
                    server.logger.warning("the pool's master (pid \(master)) is gone: this worker stops")
                    server.exit()
                }
            ) { board, slot in
                for (counter, value) in statistics.poolCounters { board[slot, counter] = value }
                let threads = executor.workerCounts
                board[slot, .openConnections] = statistics.openConnections.value
                board[slot, .inFlight] = statistics.inFlight
                board[slot, .maxInFlight] = statistics.maxInFlight.value
                board[slot, .busyThreads] = threads.busy
                board[slot, .idleThreads] = threads.idle
            }
        }
    }

    /// Acceptor threads kept waiting for the next connection, at most: the
    /// serving threads kept idle wait as acceptors (more waiting cut the
    /// hand-offs and the latency of a burst of new connections; an idle one
    /// costs no CPU).
    static let spareAcceptors = idleServingThreads
    /// Acceptors started with the engine; more join as serving threads free up.
    static let firstAcceptors = 2

    /// Accepts connections until stopped, then drains and returns: the
    /// acceptors run on pool threads; this thread waits for the stop.
    func run() {
        for _ in 0..<Self.firstAcceptors { connectionThreads.run(urgent: true) { [self] in acceptLoop() } }
        while !isStopping {
            _ = try? FileDescriptor.waitReadable([stopWakeup.descriptor], timeoutMilliseconds: -1)
        }
        drainAndStop()
    }

    /// An acceptor: waits for a connection, takes it and serves it on this
    /// thread — no hand-off to another thread, as each of libfcgi's threads
    /// accepts for itself — once another acceptor waits meanwhile; back to the
    /// pool once ``spareAcceptors`` wait. The acceptors each wait in an epoll set
    /// of their own, on the listening socket exclusively, so a connection wakes
    /// one of them (and in a process manager's pool, one process).
    private func acceptLoop() {
        guard let kit = spareKits.withLock({ $0.popLast() }) ?? (try? ServingKit()),
            let epoll = kit.acceptEpoll(listening: listenFD, stop: stopWakeup)
        else {
            server.logger.error("cannot accept connections: no descriptor for an acceptor's epoll set; stopping")
            stop()
            return
        }
        defer { spareKits.withLock { if $0.count < Self.idleServingThreads { $0.append(kit) } } }
        while enterAccepting() {
            var taken: Connection?
            var failed = false
            while taken == nil && !failed && !isStopping {
                switch acceptOne(epoll) {
                case .connection(let descriptor, let peer): taken = admit(descriptor, from: peer)
                case .nothing: continue
                case .failed: failed = true
                }
            }
            let waiting = leaveAccepting()
            if failed { stop() }
            guard let connection = taken else { continue }
            // Another acceptor must wait while this thread serves: one already
            // does, or a pool thread becomes one. With every serving thread
            // busy, this one goes on accepting and the connection waits in the
            // poller for its input.
            if waiting == 0 && !connectionThreads.runIfFree({ [self] in acceptLoop() }) {
                connection.parkFresh()
                continue
            }
            connection.serve(wakeup: kit.wakeup, buffer: &kit.buffer)
        }
    }

    /// Counts this thread in as an acceptor; false when it should leave (the
    /// stop, or enough acceptors wait). With `maxRequests`, waits for a place
    /// first: no connection is accepted only to be turned away.
    private func enterAccepting() -> Bool {
        let maxRequests = server.maxRequests
        return state.wait(until: { s in
            s.stopping || s.acceptors >= Self.spareAcceptors || s.hasRoom(maxRequests: maxRequests)
        }) { s -> Bool in
            guard !s.stopping, s.acceptors < Self.spareAcceptors else { return false }
            s.acceptors += 1
            if maxRequests > 0 { s.reserved += 1 }
            return true
        } ?? false
    }

    /// Counts this thread out (its connection, if it took one, is registered
    /// already: a stop that waits for the acceptors drains it); returns how
    /// many acceptors still wait.
    private func leaveAccepting() -> Int {
        state.withLock { s in
            s.acceptors -= 1
            if server.maxRequests > 0 { s.reserved -= 1 }
            return s.acceptors
        }
    }

    private enum Accepted {
        case connection(FileDescriptor, PeerAddress)
        /// Another process or acceptor took it, it was aborted, or the stop woke us.
        case nothing
        /// Waiting on the listening socket failed: the engine stops.
        case failed
    }

    /// Waits for a connection (or the stop) and accepts it.
    private func acceptOne(_ epoll: Epoll) -> Accepted {
        do {
            let (first, second) = try epoll.waitAny()
            guard first == ServingKit.listenerKey || second == ServingKit.listenerKey else { return .nothing }
        } catch {
            server.logger.error("waiting on the listening socket failed: \(error)")
            return .failed
        }
        do {
            // One at a time: processes sharing the socket (a pool's workers) each
            // take their turn.
            let accepted = try acceptor.accept()
            return .connection(accepted.descriptor, accepted.peer)
        } catch {
            if error.wouldBlock || error.code == ECONNABORTED { return .nothing }
            server.logger.warning("accept failed: \(error)")
            // Out of descriptors: give the connections a moment to close some.
            if error.code == EMFILE || error.code == ENFILE { MonotonicClock.sleep(seconds: 0.01) }
            return .nothing
        }
    }

    /// Registers a new connection for the caller to serve, unless the address
    /// is not allowed or too many are open (then `descriptor` closes with its
    /// owner).
    private func admit(_ descriptor: FileDescriptor, from peer: PeerAddress) -> Connection? {
        guard allowList.allows(peer) else {
            server.logger.warning("refused a connection from \(peer): not in FCGI_WEB_SERVER_ADDRS")
            return nil
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
            return nil
        }
        statistics.acceptedConnections.increment()
        statistics.openConnections.increment()
        return connection
    }

    /// The stop, visible at once: the connections already queued are taken, the
    /// listener is closed (a web server is then refused and fails over); each
    /// open connection closes with the end of its last request in flight — the
    /// web server sees the close with the END_REQUEST, so it never sends on it
    /// again (``Connection/closingMark``) — or, quiet, after
    /// ``freshGrace`` (a web server may be sending on a kept one right now);
    /// then the requests in flight finish (bounded by the shutdown timeout) and
    /// the threads end.
    private func drainAndStop() {
        // No acceptor is inside `accept` when the listener closes, and every
        // connection one took is registered, so drained below.
        _ = state.wait(until: { $0.acceptors == 0 }) { _ in }
        var taken = 0
        while soleListener && acceptQueued() { taken += 1 }
        listener = nil
        listenerClosed()
        let (connections, inFlight) = state.withLock { s in
            s.stopping = true
            return (Array(s.connections.values), s.inFlight)
        }
        server.logger.info(
            "stopping: listener closed; draining \(connections.count) connections with \(inFlight) requests in flight",
            metadata: taken > 0 ? ["accepted from the queue": "\(taken)"] : [:])
        for connection in connections { connection.drain() }
        // Each connection gets a moment to bring a request: a web server sends
        // one right after connecting, or on a kept connection at any time. It is
        // served, and the connection closes after it; the rest close now.
        let quiet =
            state.wait(until: { $0.connections.isEmpty }, timeout: Self.freshGrace) { _ in [Connection]() }
            ?? state.withLock { s in Array(s.connections.values) }
        if !quiet.isEmpty {
            server.logger.info("stopping: closing \(quiet.count) connections still open after the \(Self.freshGrace) s grace")
        }
        for connection in quiet { connection.drain(evenIfFresh: true) }
        let drained = state.wait(until: { $0.inFlight == 0 && $0.background == 0 }, timeout: server.shutdownSeconds) {
            _ in true
        }
        if drained == nil {
            let (cut, background) = state.withLock { ($0.inFlight, $0.background) }
            server.logger.warning(
                "stopping: \(cut) requests (and \(background) handlers working after their response) still running after the \(server.shutdownTimeout) shutdown timeout; cut"
            )
        } else if !flusher.waitUntilSent(timeout: server.shutdownSeconds) {
            server.logger.warning("output still queued for slow readers after the \(server.shutdownTimeout) shutdown timeout")
        }
        if drained != nil {
            server.logger.info("stopped: every request finished (\(inFlight) were in flight)")
        }
        executor.shutdown()
        reporter?.stop()  // its last figures, with every request counted
        watchdog?.stop()
        poller.stop()
        flusher.stop()
        connectionThreads.shutdown()
    }

    /// Serves `connection` on a pool thread with a wake-up and a buffer of its own.
    private func serve(_ connection: Connection, idledOut: Bool = false, fresh: Bool = false) {
        let job: @Sendable () -> Void = { [self] in
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
        // A new connection finds every serving thread busy (a burst of connects):
        // it waits in the poller until it has input, not in the pool's queue,
        // where it would take a thread for `linger` with nothing to read.
        if fresh {
            if !connectionThreads.runIfFree(job) { connection.parkFresh() }
            return
        }
        connectionThreads.run(urgent: connection.hasRequestsInFlight, job)
    }

    /// Takes up a parked connection (input arrived, it idled out, or it must
    /// drain), unless another caller already did.
    func takeUp(_ connection: Connection, idledOut: Bool = false) {
        guard connection.unpark() else { return }
        serve(connection, idledOut: idledOut)
    }

    var isStopping: Bool { state.withLock { $0.stopping } }

    /// Accepts a connection already queued on the listener, without waiting
    /// (the stop takes them before it closes the listener); false when none is.
    private func acceptQueued() -> Bool {
        do {
            let accepted = try acceptor.accept()
            // Served on a pool thread while it has work; parked when idle.
            if let connection = admit(accepted.descriptor, from: accepted.peer) { serve(connection, fresh: true) }
            return true
        } catch {
            return error.code == ECONNABORTED
        }
    }

    /// Makes ``run()`` stop accepting (any thread): the acceptors leave.
    func stop() {
        state.withLock { $0.stopping = true }
        stopWakeup.signal()
    }

    /// Counts a request on connection `number` in; true when it is the
    /// `maxRequests`th, which stops the engine. The limit is soft: a request a
    /// web server sends on a connection already open is served, whenever it
    /// comes — turning it away would fail it (nginx does not retry a POST) — and
    /// its connection closes after it; no connection is accepted past the limit.
    func admitRequest(on number: Int) -> Bool {
        let last = state.withLock { s -> Bool in
            s.fresh.remove(number)
            s.inFlight += 1
            s.started += 1
            return server.maxRequests > 0 && s.started == server.maxRequests
        }
        statistics.requestStarted()
        return last
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

    /// A handler goes on after its request ended (`Request.finish()`): a drain
    /// waits for it as for a request in flight.
    func backgroundStarted() { state.withLock { $0.background += 1 } }

    /// A handler that went on after its request ended returned.
    func backgroundEnded() { state.withLock { $0.background -= 1 } }

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
    /// An acceptor's epoll set: the listening socket (exclusively) and the
    /// engine's stop (made on first use).
    private var epoll: Epoll?
    static let listenerKey: UInt64 = 0
    static let stopKey: UInt64 = 1

    /// The epoll set this kit's thread waits in as an acceptor; nil if it
    /// cannot be made (no descriptor left).
    func acceptEpoll(listening listenFD: Int32, stop: Wakeup) -> Epoll? {
        if let epoll { return epoll }
        do {
            let made = try Epoll()
            try made.watchExclusive(listenFD, key: Self.listenerKey)
            try made.watch(stop.descriptor, key: Self.stopKey)
            epoll = made
            return made
        } catch {
            return nil
        }
    }
    /// Left uninitialised: a read touches only the pages it fills.
    @exclusivity(unchecked) var buffer = [UInt8](unsafeUninitializedCapacity: 65536) { _, count in count = 65536 }

    init() throws(SystemError) {
        wakeup = try Wakeup()
    }
}
