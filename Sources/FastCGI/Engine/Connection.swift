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
    /// The request ran past its timeout: end it like ``abort()``, with a
    /// `504 Gateway Timeout` response if nothing was sent yet.
    func timeOut()
    /// Sends what the calls above queued (one write per batch of input).
    func commit()
}

extension RequestSink {
    func commit() {}
    func timeOut() { abort() }
}

/// Runs started requests: the Swift engine or the libfcgi worker pool.
protocol RequestExecutor: Sendable {
    /// Starts `request` on `connection`; returns where its input goes.
    func start(_ request: RequestStart, on connection: Connection) -> any RequestSink
    /// Stops the executor's threads when the server stops.
    func shutdown()
    /// Handler threads running a request, and idle ones (for the status page).
    var workerCounts: (busy: Int, idle: Int) { get }
}

/// One accepted connection. Its thread reads records, feeds the
/// ``ConnectionMachine`` and carries out the machine's actions, in order, outside
/// any lock: the only thread that ever blocks handing input to a request is this
/// one, so a relay or handler thread never waits for it (no lock cycles). Request
/// executors write to the peer through ``write(_:)`` (serialized) and report ends
/// through ``requestEnded(_:)``, which queues the machine's reaction and wakes
/// this thread.
final class Connection: @unchecked Sendable {
    let fd: Int32
    let number: Int
    let peer: PeerAddress
    let engine: Engine
    var logger: Logger

    private struct State {
        var machine: ConnectionMachine
        var sinks = RequestTable<any RequestSink>()
        /// Actions decided but not yet carried out (by the connection thread).
        var pending: [ConnectionAction] = []
        /// Requests that ended before their sink was registered.
        var ended: Set<UInt16> = []
        var draining = false
        /// The connection thread is in a blocking read with nothing in flight
        /// (levels 0/1); ``drain()`` shuts the read side down to end it.
        var inQuietRead = false
    }

    private let state: Guarded<State>
    private let writeLock = Guarded(false)  // true once the connection is closed for writing
    /// True while this connection's thread runs a handler and the engine's
    /// ``BusyConnectionWatcher`` reads for it; held by the watcher while it reads,
    /// so the thread takes its socket back between two of the watcher's reads.
    private let watched = Guarded(false)
    /// The second buffer of ``carryOutPending()`` (connection thread only).
    private var spareActions: [ConnectionAction] = []
    /// A pipe that wakes the connection thread when another thread queued actions.
    private let wakeRead: Int32
    private let wakeWrite: Int32

    init(fd: Int32, number: Int, peer: PeerAddress, engine: Engine) throws {
        self.fd = fd
        self.number = number
        self.peer = peer
        self.engine = engine
        var logger = engine.server.logger
        logger[metadataKey: "connection"] = "\(number)"
        self.logger = logger
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw ServerError.errno("pipe for connection \(number)") }
        for end in fds {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, O_NONBLOCK)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
        state = Guarded(
            State(
                machine: ConnectionMachine(
                    multiplexing: engine.server.threadingLevel == .multiplexed, roles: Set(engine.server.handlers.keys),
                    managementValues: engine.server.managementValues, limits: engine.server.connectionLimits)))
    }

    /// Reads until the connection closes, then waits for its requests and closes the
    /// descriptors. Runs on the connection's thread.
    func run() {
        // Left uninitialised: an idle connection touches none of its pages.
        var buffer = [UInt8](unsafeUninitializedCapacity: 65536) { _, count in count = 65536 }
        let idle = engine.server.connectionLimits.idleTimeout
        // Levels 0/1: with nothing in flight, no other thread has anything for this
        // one but a drain, so it blocks in read alone — one system call fewer per
        // request than poll and read; the idle timeout is the socket's.
        let quietReads = engine.busyWatcher != nil
        if quietReads, let idle {
            var limit = timeval(tv_sec: Int(min(idle, 1e9)), tv_usec: Int((idle - idle.rounded(.down)) * 1e6))
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        }
        var closed = false
        while !closed {
            let readAlone =
                quietReads
                && state.withLock { s in
                    guard s.sinks.isEmpty && s.pending.isEmpty && !s.draining && !s.machine.readClosed else { return false }
                    s.inQuietRead = true
                    return true
                }
            if readAlone {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                let failure = errno
                state.withLock { $0.inQuietRead = false }
                if n > 0 {
                    buffer.withUnsafeBytes { received(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                } else if n < 0 && (failure == EAGAIN || failure == EWOULDBLOCK) {
                    logger.info("closing idle connection", metadata: ["seconds": "\(idle ?? 0)"])
                    closedByPeer()
                } else if n == 0 || failure != EINTR {
                    closedByPeer()
                }
                carryOutPending()
                if state.withLock({ $0.machine.isClosed }) { closed = true }
                continue
            }
            let (quiet, readClosed) = state.withLock { ($0.sinks.isEmpty && $0.pending.isEmpty, $0.machine.readClosed) }
            // Once the peer's side is closed only the wake-ups matter (a negative
            // descriptor is skipped by poll): requests whose input was complete
            // run on and are answered.
            var fds = [
                pollfd(fd: readClosed ? -1 : fd, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
            ]
            let timeout: Int32 = quiet ? idle.map { Int32(min($0 * 1000, 2_000_000_000)) } ?? -1 : -1
            let ready = poll(&fds, 2, timeout)
            if ready < 0 {
                if errno == EINTR { continue }
                closedByPeer()
            } else if ready == 0 {
                logger.info("closing idle connection", metadata: ["seconds": "\(idle ?? 0)"])
                closedByPeer()
            } else {
                if fds[1].revents != 0 {
                    var sink = [UInt8](repeating: 0, count: 64)
                    while Glibc.read(wakeRead, &sink, sink.count) > 0 {}
                }
                if fds[0].revents != 0 {
                    let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                    if n > 0 {
                        buffer.withUnsafeBytes { received(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                    } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                        closedByPeer()
                    }
                }
            }
            carryOutPending()
            if state.withLock({ $0.machine.isClosed }) { closed = true }
        }
        // Requests still running were aborted; wait for them (bounded), then close.
        let deadline = engine.server.shutdownTimeout
        _ = state.wait(until: { $0.sinks.isEmpty }, timeout: deadline) { _ in }
        writeLock.withLock { $0 = true }
        engine.busyWatcher?.forget(self)
        close(fd)
        close(wakeRead)
        close(wakeWrite)
        engine.connectionClosed(self)
    }

    /// Feeds bytes that arrived to the machine.
    private func received(_ bytes: UnsafeRawBufferPointer) {
        decide { machine, actions in machine.receive(bytes, into: &actions) }
    }

    /// Tells the machine the peer is gone (or the connection failed or idled out).
    private func closedByPeer() {
        decide { machine, actions in actions += machine.peerClosed() }
    }

    /// Feeds the machine under the lock and queues its actions.
    private func decide(_ event: (inout ConnectionMachine, inout [ConnectionAction]) -> Void) {
        let answered = state.withLock { s -> Int in
            let before = s.machine.getValuesAnswered
            event(&s.machine, &s.pending)
            return s.machine.getValuesAnswered - before
        }
        if answered > 0 { engine.statistics.getValuesAnswered.add(answered, ordering: .relaxed) }
    }

    /// Carries out queued actions in order, outside the lock (connection thread only).
    private func carryOutPending() {
        // Two buffers swapped with `pending`, so a batch allocates nothing.
        var actions = spareActions
        defer { spareActions = actions }
        while true {
            actions.removeAll(keepingCapacity: true)
            state.withLock { swap(&actions, &$0.pending) }
            if actions.isEmpty { break }
            // The sinks given input in this batch, each committed once: usually one
            // (kept without allocating), a handful at most (a linear search).
            var first: (any RequestSink)?
            var others: [any RequestSink] = []
            for action in actions {
                guard let sink = carryOut(action) else { continue }
                guard let current = first else {
                    first = sink
                    continue
                }
                if current !== sink && !others.contains(where: { $0 === sink }) { others.append(sink) }
            }
            first?.commit()
            for sink in others { sink.commit() }
        }
        if state.withLock({ $0.draining && $0.sinks.isEmpty && !$0.machine.isClosed }) { shutdownAfterWriters() }
    }

    /// Carries out one action; returns the sink it gave input to, if any.
    private func carryOut(_ action: ConnectionAction) -> (any RequestSink)? {
        switch action {
        case .send(let bytes):
            _ = bytes.withUnsafeBytes { write($0) }
            return nil
        case .start(let start):
            if let page = MonitorPage(start, monitoring: engine.server.monitoring) {
                // Ping and status: answered here, no handler, no worker, not counted.
                let id = start.requestID
                var end = page.records(requestID: id, engine: engine)
                StreamWriter.appendRequestEnd(requestID: id, stderrUsed: false, into: &end)
                let sink = AnsweredRequest()
                endRequest(id, endRecords: end, counted: false)
                state.withLock { s in
                    if s.ended.isEmpty || s.ended.remove(id) == nil { s.sinks[id] = sink }
                }
                return sink
            }
            let reachedMax = engine.requestStarted()
            let sink = engine.executor.start(start, on: self)
            // The sink may have ended already (a refusal): only keep a live one.
            let running = state.withLock { s -> Int in
                guard s.ended.isEmpty || s.ended.remove(start.requestID) == nil else { return s.sinks.count }
                s.sinks[start.requestID] = sink
                // Under the lock: the request cannot end (and leave the watchdog)
                // before it was watched.
                engine.watchdog?.started(start, sink: sink, on: self)
                return s.sinks.count
            }
            engine.statistics.maxPerConnection.raise(to: running)
            // Stop only once the request is registered, so draining waits for it.
            if reachedMax { engine.server.exit() }
            return sink
        case .stdin(let id, let bytes):
            let sink = sink(id)
            sink?.stdin(bytes)
            return sink
        case .data(let id, let bytes):
            let sink = sink(id)
            sink?.data(bytes)
            return sink
        case .abort(let id):
            engine.statistics.abortedRequests.increment()
            logger.debug("the web server aborted the request", metadata: ["request": "\(id)"])
            sink(id)?.abort()
            return nil
        case .refused(let id, let reason):
            engine.statistics.refusedRequests.increment()
            if reason.hasPrefix("FCGI_OVERLOADED") { engine.statistics.limitHits.increment() }
            logger.warning("refused a request: \(reason)", metadata: ["request": "\(id)", "peer": "\(peer)"])
            return nil
        case .close(let reason):
            if reason == "peer closed the connection" || reason.contains("FCGI_KEEP_CONN") {
                logger.debug("closing connection: \(reason)")
            } else {
                if reason.contains("limit") { engine.statistics.limitHits.increment() }
                logger.warning("closing connection: \(reason)", metadata: ["peer": "\(peer)"])
            }
            let running = state.withLock { Array($0.sinks.values) }
            if !running.isEmpty { engine.statistics.abortedRequests.add(running.count, ordering: .relaxed) }
            for sink in running { sink.abort() }
            shutdownAfterWriters()
            return nil
        }
    }

    // MARK: While this thread runs a handler (levels 0 and 1)

    /// Runs `body` — a request's handler, on this connection's thread — while the
    /// engine's watcher reads the connection: management records are answered and
    /// an abort ends the request at once, as when this thread reads (SPEC §4).
    func runWatched(_ body: () -> Void) {
        guard let watcher = engine.busyWatcher else { return body() }
        watched.withLock { $0 = true }
        watcher.busy(self)
        body()
        watched.withLock { $0 = false }
        watcher.idle(self)
    }

    /// The watcher's read (watcher thread): feeds the machine and carries out what
    /// need not wait for the handler to return — replies, refusals, aborts, a close.
    /// Anything else (a pipelined request's start) stays queued, in order, for this
    /// connection's thread.
    func readWhileBusy(into buffer: inout [UInt8], watcher: BusyConnectionWatcher) {
        watched.withLock { watching in
            guard watching else { return }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 {
                buffer.withUnsafeBytes { received(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
            } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                closedByPeer()
            }
            while let action = state.withLock({ s -> ConnectionAction? in
                guard let first = s.pending.first else { return nil }
                switch first {
                case .send, .refused, .abort, .close:
                    s.pending.removeFirst()
                    return first
                case .start, .stdin, .data:
                    return nil
                }
            }) {
                _ = carryOut(action)
            }
            if !state.withLock({ $0.machine.isClosed || $0.machine.readClosed }) { watcher.rearm(fd) }
        }
    }

    /// Shuts the socket down once no writer is in the middle of a write: a request
    /// that just ended holds the write lock from telling the machine until its
    /// END_REQUEST is written, and that END_REQUEST must not be cut off.
    private func shutdownAfterWriters() {
        writeLock.withLock { _ in _ = shutdown(fd, Int32(SHUT_RDWR)) }
    }

    private func sink(_ id: UInt16) -> (any RequestSink)? {
        state.withLock { $0.sinks[id] }
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

    /// Ends a request (any thread): tells the machine, then writes `endRecords`
    /// (the streams' ends and `FCGI_END_REQUEST`), both under the write lock, so the
    /// peer cannot see the end before the machine knows (it may send the next
    /// request at once) and no output of a request started next can precede it.
    /// Never blocks on the connection thread.
    func endRequest(_ requestID: UInt16, endRecords: [UInt8], counted: Bool = true) {
        let needWake = writeLock.withLock { closed in
            let needWake = requestEnded(requestID)
            if !closed && !endRecords.withUnsafeBytes({ Socket.writeAll(fd, $0) }) { closed = true }
            return needWake
        }
        // Counted out only once END_REQUEST is written: run() returns (and the
        // process may exit) when nothing is in flight.
        if counted {
            engine.watchdog?.ended(requestID, on: self)
            engine.requestFinished()
        }
        // The connection thread only has work if the machine reacted (close, a
        // pipelined request) or it is draining; most ends need no wake-up.
        if needWake { wake() }
    }

    /// Returns whether the connection thread must be woken.
    private func requestEnded(_ requestID: UInt16) -> Bool {
        state.withLock { s in
            // Forget the sink first: a pipelined request may reuse the id (nginx
            // always uses 1). A sink that ends before it was registered is noted.
            if s.sinks.removeValue(forKey: requestID) == nil { s.ended.insert(requestID) }
            s.pending += s.machine.requestEnded(requestID)
            return !s.pending.isEmpty || s.draining
        }
    }

    /// Stops reading new requests: closes now if idle, else after the requests in
    /// flight end.
    func drain() {
        // The connection thread decides (it alone registers requests, so one being
        // started right now is not missed).
        state.withLock { s in
            s.draining = true
            // Blocked in a read with nothing in flight: end the read (it returns 0,
            // and the idle connection closes).
            if s.inQuietRead { _ = shutdown(fd, Int32(SHUT_RD)) }
        }
        wake()
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWrite, &byte, 1)
    }
}

/// A request the connection answered itself (ping, status): its input is ignored.
final class AnsweredRequest: RequestSink {
    func stdin(_ bytes: [UInt8]) {}
    func data(_ bytes: [UInt8]) {}
    func abort() {}
}
