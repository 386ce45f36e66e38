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
    let executor: any RequestExecutor
    /// Counters for logs and the status page.
    let statistics = ServerStatistics()
    /// Slow-request log and request timeout, when ``Monitoring`` asks for them.
    let watchdog: Watchdog?
    /// Levels 0 and 1: reads for connections whose thread runs a handler.
    let busyWatcher: BusyConnectionWatcher?
    private let allowList: WebServerAllowList
    private let wakeRead: Int32
    private let wakeWrite: Int32

    private struct State {
        var connections: [Int: Connection] = [:]
        var nextConnection = 0
        var inFlight = 0
        var started = 0
        var stopping = false
    }

    private let state = Guarded(State())

    init(server: Server, listenFD: Int32) throws {
        self.server = server
        self.listenFD = listenFD
        allowList = WebServerAllowList(getenv("FCGI_WEB_SERVER_ADDRS").map { String(cString: $0) })
        watchdog = server.monitoring.watchesRequests ? try Watchdog(monitoring: server.monitoring, statistics: statistics) : nil
        let (r, w) = try Socket.pair()
        wakeRead = r
        wakeWrite = w
        switch server.threadingLevel {
        case .single: executor = try LibFCGIWorkerPool(server: server, size: 1)
        case .perConnection: executor = try LibFCGIWorkerPool(server: server, size: server.workers)
        case .multiplexed: executor = SwiftExecutor(server: server)
        }
        busyWatcher = server.threadingLevel == .multiplexed ? nil : try BusyConnectionWatcher()
    }

    /// Accepts connections until stopped, then drains and returns.
    func run() {
        while !isStopping {
            var fds = [
                pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
            ]
            let rc = poll(&fds, 2, -1)
            if rc < 0 {
                if errno == EINTR { continue }
                server.logger.error("poll on the listening socket failed: \(String(cString: strerror(errno)))")
                break
            }
            if fds[1].revents != 0 { break }
            guard fds[0].revents != 0 else { continue }
            guard let (fd, peer) = Socket.accept(listenFD) else {
                if errno == EAGAIN || errno == EINTR || errno == ECONNABORTED { continue }
                server.logger.warning("accept failed: \(String(cString: strerror(errno)))")
                if errno == EMFILE || errno == ENFILE { usleep(10_000) }
                continue
            }
            guard allowList.allows(peer) else {
                server.logger.warning("refused a connection from \(peer): not in FCGI_WEB_SERVER_ADDRS")
                close(fd)
                continue
            }
            let connection = state.withLock { s -> Connection? in
                guard s.connections.count < server.connectionLimits.maxConnections else { return nil }
                s.nextConnection += 1
                guard let connection = try? Connection(fd: fd, number: s.nextConnection, peer: peer, engine: self) else {
                    return nil
                }
                s.connections[s.nextConnection] = connection
                return connection
            }
            guard let connection else {
                statistics.limitHits.increment()
                server.logger.warning("refused a connection: \(server.connectionLimits.maxConnections) connections already open")
                close(fd)
                continue
            }
            statistics.acceptedConnections.increment()
            statistics.openConnections.increment()
            // Every level reads each connection on a thread of its own: level 0 runs
            // one request at a time (one libfcgi worker), but an idle connection
            // must not keep the next web-server connection waiting. At levels 0/1
            // the thread also runs handlers: it gets a worker thread's stack size.
            do {
                try OSThread.spawn(stackSize: busyWatcher == nil ? 256 << 10 : 512 << 10) { connection.run() }
            } catch {
                server.logger.error("cannot start a connection thread: \(error)")
                shutdown(fd, Int32(SHUT_RDWR))
                connection.run()
            }
        }
        // Stop: no new connections; idle ones close now, busy ones after their requests.
        let connections = state.withLock { s in
            s.stopping = true
            return Array(s.connections.values)
        }
        for connection in connections { connection.drain() }
        let drained = state.wait(until: { $0.inFlight == 0 }, timeout: server.shutdownTimeout) { _ in true }
        if drained == nil {
            server.logger.warning("requests still running after the \(server.shutdownTimeout) s shutdown timeout")
        }
        executor.shutdown()
        watchdog?.stop()
        busyWatcher?.stop()
    }

    var isStopping: Bool { state.withLock { $0.stopping } }

    /// Makes ``run()`` stop accepting (any thread).
    func stop() {
        state.withLock { $0.stopping = true }
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWrite, &byte, 1)
    }

    /// Counts a request in; true when it is the `maxRequests`-th.
    func requestStarted() -> Bool {
        statistics.requestStarted()
        return state.withLock { s in
            s.inFlight += 1
            s.started += 1
            return server.maxRequests > 0 && s.started == server.maxRequests
        }
    }

    func requestFinished() {
        statistics.requestFinished()
        state.withLock { $0.inFlight -= 1 }
    }

    func connectionClosed(_ connection: Connection) {
        statistics.openConnections.subtract(1, ordering: .relaxed)
        state.withLock { _ = $0.connections.removeValue(forKey: connection.number) }
    }
}
