import FastCGIWire
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Where a started request's input goes: the Swift engine's transport (level 2) or a
/// libfcgi worker (levels 0 and 1).
protocol RequestSink: AnyObject, Sendable {
    /// Body bytes; empty at the end of the stream.
    func stdin(_ bytes: [UInt8])
    /// Filter data bytes; empty at the end of the stream.
    func data(_ bytes: [UInt8])
    /// The web server aborted the request or went away.
    func abort()
}

/// Runs started requests: the Swift engine or the libfcgi worker pool.
protocol RequestExecutor: Sendable {
    /// Starts `request` on `connection`; returns where its input goes.
    func start(_ request: RequestStart, on connection: Connection) -> any RequestSink
    /// Stops the executor's threads when the server stops.
    func shutdown()
}

/// One accepted connection. Its thread reads records and feeds the
/// ``ConnectionMachine``; request executors write to it through ``write(_:)``
/// (serialized) and report ends through ``requestEnded(_:)``.
final class Connection: @unchecked Sendable {
    let fd: Int32
    let number: Int
    let peer: PeerAddress
    let engine: Engine
    var logger: Logger

    private struct State {
        var machine: ConnectionMachine
        var sinks: [UInt16: any RequestSink] = [:]
        var draining = false
    }

    private let state: Guarded<State>
    private let writeLock = Guarded(false)  // true once the connection is closed for writing

    init(fd: Int32, number: Int, peer: PeerAddress, engine: Engine) {
        self.fd = fd
        self.number = number
        self.peer = peer
        self.engine = engine
        var logger = engine.server.logger
        logger[metadataKey: "connection"] = "\(number)"
        self.logger = logger
        state = Guarded(
            State(
                machine: ConnectionMachine(
                    multiplexing: engine.server.threadingLevel == .multiplexed, roles: Set(engine.server.handlers.keys),
                    managementValues: engine.server.managementValues, limits: engine.server.connectionLimits)))
    }

    /// Reads until the connection closes, then waits for its requests and closes the
    /// descriptor. Runs on the connection's thread.
    func run() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let idle = engine.server.connectionLimits.idleTimeout
        while true {
            if let idle, state.withLock({ $0.sinks.isEmpty }), !Socket.waitReadable(fd, timeout: idle) {
                logger.info("closing idle connection", metadata: ["seconds": "\(idle)"])
                perform { $0.peerClosed() }
                break
            }
            guard let n = Socket.read(fd, into: &buffer) else {
                perform { $0.peerClosed() }
                break
            }
            let closed = perform { $0.receive(buffer[..<n]) }
            if closed { break }
        }
        // Requests still running were aborted; their threads finish on their own.
        state.wait(until: { $0.sinks.isEmpty }, timeout: engine.server.shutdownTimeout) { _ in }
        writeLock.withLock { $0 = true }
        close(fd)
        engine.connectionClosed(self)
    }

    /// Feeds the machine under the lock and carries out its actions in order.
    /// Returns whether the connection is closed.
    @discardableResult
    private func perform(_ event: (inout ConnectionMachine) -> [ConnectionAction]) -> Bool {
        perform { (s: inout State) in event(&s.machine) }
    }

    @discardableResult
    private func perform(_ event: (inout State) -> [ConnectionAction]) -> Bool {
        // The lock is held while actions run so that input for a request is never
        // reordered between the reader and a thread that ends an earlier request.
        let closed = state.withLock { s in
            let actions = event(&s)
            for action in actions { carryOut(action, state: &s) }
            if s.draining && s.sinks.isEmpty && !s.machine.isClosed {
                shutdown(fd, Int32(SHUT_RDWR))
            }
            return s.machine.isClosed
        }
        runDeferred()
        return closed
    }

    private let deferred = Guarded<[@Sendable () -> Void]>([])

    /// Runs `job` once the connection's lock is released (sinks use it to end a
    /// request from inside an action, which holds the lock).
    func later(_ job: @escaping @Sendable () -> Void) {
        deferred.withLock { $0.append(job) }
    }

    private func runDeferred() {
        while true {
            let jobs = deferred.withLock { jobs in
                defer { jobs.removeAll() }
                return jobs
            }
            if jobs.isEmpty { return }
            for job in jobs { job() }
        }
    }

    private func carryOut(_ action: ConnectionAction, state s: inout State) {
        switch action {
        case .send(let bytes):
            _ = bytes.withUnsafeBytes { write($0) }
        case .start(let start):
            engine.requestStarted()
            s.sinks[start.requestID] = engine.executor.start(start, on: self)
        case .stdin(let id, let bytes):
            s.sinks[id]?.stdin(bytes)
        case .data(let id, let bytes):
            s.sinks[id]?.data(bytes)
        case .abort(let id):
            s.sinks[id]?.abort()
        case .close(let reason):
            logger.debug("closing connection: \(reason)")
            if reason != "peer closed the connection" && !reason.contains("FCGI_KEEP_CONN") {
                logger.warning("closing connection: \(reason)", metadata: ["peer": "\(peer)"])
            }
            for sink in s.sinks.values { sink.abort() }
            shutdown(fd, Int32(SHUT_RDWR))
        }
    }

    /// Writes bytes to the peer, serialized with every other writer; false once the
    /// connection is closed or the peer went away.
    func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        writeLock.withLock { closed in
            guard !closed else { return false }
            if !Socket.writeAll(fd, bytes) {
                closed = true
                return false
            }
            return true
        }
    }

    /// A request's `FCGI_END_REQUEST` was written: forget it, maybe close or start a
    /// pipelined request.
    func requestEnded(_ requestID: UInt16) {
        engine.requestFinished()
        perform { (s: inout State) in
            // Forget the sink first: a pipelined request started by the actions
            // below may reuse the id (nginx always uses 1).
            s.sinks.removeValue(forKey: requestID)
            return s.machine.requestEnded(requestID)
        }
    }

    /// Stops reading new requests: closes now if idle, else after the requests in
    /// flight end.
    func drain() {
        state.withLock { s in
            s.draining = true
            if s.sinks.isEmpty { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }
}
