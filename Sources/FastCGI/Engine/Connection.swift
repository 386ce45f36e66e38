import FastCGIWire
import Logging
import Synchronization

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
    /// The request ran past its timeout (`.request`), or its input stalled
    /// (`.input`): end it like ``abort()``, with a `504 Gateway Timeout` or
    /// `408 Request Timeout` response if nothing was sent yet; a handler still
    /// reading its input sees the read fail (``RequestError/Cause/inputStalled``).
    func timeOut(_ expiry: Expiry)
    /// Sends what the calls above queued (one write per batch of input). The first
    /// commit starts the request; `onServingThread` says whether it may run on the
    /// calling thread (the connection's serving thread, not the poller).
    func commit(onServingThread: Bool)
}

extension RequestSink {
    func commit(onServingThread: Bool) {}
    func timeOut(_ expiry: Expiry) { abort() }
}

/// Which timeout ended a request.
enum Expiry: Sendable {
    /// ``Monitoring/requestTimeout``: the request ran too long.
    case request
    /// ``ConnectionLimits/inputTimeout``: its stdin (or data) stopped arriving.
    case input
}

extension RequestError {
    /// What a handler's read throws once an early end cut its input short: an
    /// abort (`expiry` nil), the request timeout or an input stall. The one
    /// wording for both engines.
    static func inputCutShort(requestID: UInt16, by expiry: Expiry?) -> RequestError {
        let (cause, reason): (Cause, String) =
            switch expiry {
            case .input: (.inputStalled, "no input came for the input timeout; the request was ended")
            case .request: (.aborted, "the request timed out before its input ended")
            case nil: (.aborted, "the web server aborted the request before its input ended")
            }
        return RequestError("request \(requestID): \(reason)", cause: cause)
    }
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

/// One accepted connection. A thread serves it only while it has something to do:
/// a pool thread reads records, feeds the ``ConnectionMachine`` and carries out
/// the machine's actions, in order, outside any lock; once nothing is in flight
/// and no input came for ``linger`` it parks the connection in the engine's
/// ``ConnectionPoller`` and goes back to the pool. The only thread that ever
/// blocks handing input to a request is the serving one, so a relay or handler
/// thread never waits for it (no lock cycles). Request executors write to the
/// peer through ``write(_:)`` (serialized) and report ends through
/// ``endRequest(_:endRecords:counted:)``, which queues the machine's reaction and
/// wakes the serving thread (or takes a parked connection up again).
///
/// The socket is a ``FileDescriptor`` owned by this object: it is shut down when
/// the connection closes, and let go when the last thread holding the connection
/// (a request still finishing, the poller) is done.
final class Connection: @unchecked Sendable {
    let descriptor: FileDescriptor
    let number: Int
    let peer: PeerAddress
    let engine: Engine
    /// When it was accepted (seconds since the epoch), for the status page.
    let openedAt = WallClock.seconds()
    /// Requests ended on it, for the status page.
    private let served = Atomic<Int>(0)
    var logger: Logger

    /// How long a thread waits for the next request on a quiet connection before
    /// it parks it: back-to-back requests (a busy kept connection) keep their
    /// thread and cost one `read` each; a connection quiet for longer costs none.
    static let linger = 0.01

    private struct State {
        var machine: ConnectionMachine
        var sinks = RequestTable<any RequestSink>()
        /// Actions decided but not yet carried out (by the serving thread).
        var pending: [ConnectionAction] = []
        /// Requests that ended before their sink was registered.
        var ended: Set<UInt16> = []
        var draining = false
        /// A request was started on this connection: a drain may close it between
        /// requests. A fresh one is left to bring its first request, unless
        /// ``closeFresh`` (the stop's grace is over).
        var startedAny = false
        var closeFresh = false
        /// Draining, with nothing in flight and nothing more to wait for: close.
        var drainedOut: Bool { draining && sinks.isEmpty && !machine.isClosed && (startedAny || closeFresh) }
        /// The serving thread is in a blocking read with nothing in flight;
        /// ``drain()`` shuts the read side down to end it.
        var inQuietRead = false
        /// No thread serves the connection: it waits in the poller. Whoever turns
        /// this off (``unpark()``) takes it up.
        var parked = false
        /// Wakes the serving thread from its `poll` (nil while parked).
        var serving: Wakeup?
        /// Requests waiting for input, for the input timeout (the serving
        /// thread's wait ends at the next deadline).
        var stalls: InputStalls

        /// Nothing in flight, nothing to do: the connection may wait for input.
        var isQuiet: Bool { sinks.isEmpty && pending.isEmpty && !draining && !machine.readClosed }
        /// Requests in flight, but none waits for input and nothing is queued:
        /// until a request ends (which wakes the connection) only new input
        /// matters, so the connection may wait in the poller like a quiet one.
        var onlyRunning: Bool {
            !sinks.isEmpty && pending.isEmpty && !draining && !machine.readClosed && !machine.awaitsInput
        }
    }

    private let state: Guarded<State>
    private let writeLock = Guarded(false)  // true once the connection is closed for writing
    /// True while this connection's thread runs a handler and the engine's
    /// ``ConnectionPoller`` reads for it; held by the poller while it reads,
    /// so the thread takes its socket back between two of the poller's reads.
    private let watched = Guarded(false)
    /// The second buffer of ``carryOutPending()`` (serving thread only).
    private var spareActions: [ConnectionAction] = []

    init(descriptor: FileDescriptor, number: Int, peer: PeerAddress, engine: Engine) {
        self.descriptor = descriptor
        self.number = number
        self.peer = peer
        self.engine = engine
        var logger = engine.server.logger
        logger[metadataKey: "connection"] = "\(number)"
        self.logger = logger
        // A quiet read gives up after `linger` (then the connection is parked).
        try? descriptor.setReceiveTimeout(Self.linger)
        state = Guarded(
            State(
                machine: ConnectionMachine(
                    multiplexing: engine.server.threadingLevel == .multiplexed, roles: Set(engine.server.handlers.keys),
                    managementValues: engine.server.managementValues, limits: engine.server.connectionLimits),
                stalls: InputStalls(timeout: engine.server.connectionLimits.inputTimeout)))
    }

    /// Serves the connection on the calling pool thread until it closes (then
    /// waits for its requests and lets go) or goes quiet (then parks it). Called
    /// for a new connection and for each time a parked one is taken up;
    /// `idledOut` when the poller found it idle past the timeout.
    func serve(wakeup: Wakeup, idledOut: Bool = false) {
        wakeup.clear()
        state.withLock { $0.serving = wakeup }
        if idledOut {
            logger.info("closing idle connection", metadata: ["seconds": "\(engine.server.connectionLimits.idleTimeout ?? 0)"])
            closedByPeer()
        }
        // Left uninitialised: a read touches only the pages it fills.
        var buffer = [UInt8](unsafeUninitializedCapacity: 65536) { _, count in count = 65536 }
        while true {
            carryOutPending()
            if state.withLock({ $0.machine.isClosed }) { break }
            if waitForInput(&buffer, wakeup: wakeup) == .parked { return }
        }
        finish()
    }

    /// Closes the connection without serving it (no wake-up could be had): its
    /// requests are aborted, and it is let go like any other.
    func abandon() {
        closedByPeer()
        carryOutPending()
        finish()
    }

    private enum Wait { case done, parked }

    /// Waits for input (or a wake-up) and feeds what arrives to the machine.
    private func waitForInput(_ buffer: inout [UInt8], wakeup: Wakeup) -> Wait {
        let (quiet, mayPark, readClosed, deadline) = state.withLock { s -> (Bool, Bool, Bool, Double?) in
            let quiet = s.isQuiet
            // Nothing in flight: no other thread has anything for this one but a
            // drain (which shuts the read side down), so it blocks in read alone.
            if quiet { s.inQuietRead = true }
            return (quiet, s.onlyRunning, s.machine.readClosed, s.stalls.nextDeadline)
        }
        if quiet {
            // Nothing came for `linger`: the thread goes back to the pool.
            guard readAndFeed(&buffer, endingQuietRead: true) else { return park(whileRunning: false) ? .parked : .done }
            return .done
        }
        // Requests in flight: their threads may queue actions (an end, a close)
        // and signal `wakeup`. Once the peer's side is closed only that matters:
        // requests whose input was complete run on and are answered. A request
        // waiting for input is ended once it stalls past the input timeout. When
        // none waits for input (an async handler awaiting, a long handler), the
        // thread waits `linger` and then parks the connection, work and all.
        var timeout = deadline.map { Int32(clamping: Int((($0 - MonotonicClock.seconds()) * 1000).rounded(.up))) }
        if mayPark { timeout = Int32(Self.linger * 1000) }
        let ready: [Bool]
        do {
            ready = try FileDescriptor.waitReadable(
                [readClosed ? nil : descriptor, wakeup.descriptor], timeoutMilliseconds: timeout.map { max(0, $0) } ?? -1)
        } catch {
            closedByPeer()
            return .done
        }
        if mayPark && !ready[0] && !ready[1] { return park(whileRunning: true) ? .parked : .done }
        if ready[1] { wakeup.clear() }
        if ready[0] { _ = readAndFeed(&buffer) }
        if deadline != nil { endStalledRequests() }
        return .done
    }

    /// Ends the requests whose input stalled past ``ConnectionLimits/inputTimeout``.
    private func endStalledRequests() {
        let now = MonotonicClock.seconds()
        let stalled = state.withLock { s -> [(UInt16, any RequestSink)] in
            s.stalls.takeStalled(at: now).compactMap { id in s.sinks[id].map { (id, $0) } }
        }
        for (id, sink) in stalled {
            engine.statistics.count(.inputTimeout)
            logger.warning(
                "request \(id): no input for \(engine.server.connectionLimits.inputTimeout ?? 0) s before its end; ending it",
                metadata: ["peer": "\(peer)"])
            sink.timeOut(.input)
        }
    }

    /// Reads once and feeds what came to the machine (end of stream or a failure:
    /// the peer is gone). False when nothing was there: a receive timeout, or,
    /// without `waiting`, nothing to read now. `endingQuietRead` marks the quiet
    /// read over before the bytes are fed (a drain then wakes this thread instead
    /// of shutting the read side down).
    private func readAndFeed(_ buffer: inout [UInt8], waiting: Bool = true, endingQuietRead: Bool = false) -> Bool {
        let result = buffer.withUnsafeMutableBytes { descriptor.readResult(into: $0, waiting: waiting) }
        if endingQuietRead { state.withLock { $0.inQuietRead = false } }
        switch result {
        case .success(let n) where n > 0:
            buffer.withUnsafeBytes { received(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
        case .failure(let error) where error.wouldBlock:
            return false
        default:
            closedByPeer()
        }
        return true
    }

    /// Parks the connection in the poller — a quiet one, or one whose requests
    /// only run (`whileRunning`: exempt from the idle timeout until they end);
    /// false if something came up.
    private func park(whileRunning: Bool) -> Bool {
        state.withLock { s in
            guard whileRunning ? s.onlyRunning : s.isQuiet else { return false }
            s.parked = true
            s.serving = nil
            // Under the lock: registered before anyone can take it up and close it.
            engine.poller.park(self, idle: !whileRunning)
            return true
        }
    }

    /// Takes the connection out of the parked state; true for the one caller
    /// that then serves it (the poller's event, a drain and the idle sweep race).
    func unpark() -> Bool {
        state.withLock { s in
            guard s.parked else { return false }
            s.parked = false
            return true
        }
    }

    /// The connection closed: waits for its requests (bounded), then stops every
    /// writer and lets the engine forget it. The socket itself is let go when the
    /// last thread holding this connection is done.
    private func finish() {
        // Requests still running were aborted; wait for them (bounded).
        let deadline = engine.server.shutdownTimeout
        _ = state.wait(until: { $0.sinks.isEmpty }, timeout: deadline) { _ in }
        state.withLock { $0.serving = nil }
        writeLock.withLock { closed in
            closed = true
            descriptor.shutdown(.readWrite)
        }
        engine.poller.forget(self)
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

    /// Carries out queued actions in order, outside the lock: on the serving
    /// thread, or (level 2) on the poller's while the serving thread runs a handler.
    private func carryOutPending(onServingThread: Bool = true) {
        // Two buffers swapped with `pending`, so a batch allocates nothing.
        var actions = onServingThread ? spareActions : []
        defer { if onServingThread { spareActions = actions } }
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
            first?.commit(onServingThread: onServingThread)
            for sink in others { sink.commit(onServingThread: onServingThread) }
        }
        if state.withLock({ $0.drainedOut }) { shutdownAfterWriters() }
    }

    /// What the full status page shows of it (any thread).
    var snapshot: ConnectionSnapshot {
        let (parked, inFlight) = state.withLock { s in (s.parked, s.sinks.count) }
        return ConnectionSnapshot(
            number: number, peer: peer.description, openedAt: openedAt, parked: parked, inFlight: inFlight,
            served: served.value)
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
                    s.startedAny = true
                    if s.ended.isEmpty || s.ended.remove(id) == nil { s.sinks[id] = sink }
                }
                return sink
            }
            let reachedMax: Bool
            switch engine.admitRequest(on: number) {
            case .admitted(let last): reachedMax = last
            case .overLimit:
                turnAway(start.requestID)
                return nil
            }
            // Held until its input can make progress; then it goes to the executor.
            let sink = HeldRequest(start: start, connection: self)
            let running = state.withLock { s -> Int in
                s.startedAny = true
                s.sinks[start.requestID] = sink
                if s.stalls.isActive {
                    s.stalls.started(start.requestID, filter: start.role == .filter, at: MonotonicClock.seconds())
                }
                return s.sinks.count
            }
            engine.statistics.maxPerConnection.raise(to: running)
            // Stop only once the request is registered, so draining waits for it.
            if reachedMax { engine.server.exit() }
            return sink
        case .stdin(let id, let bytes):
            let sink = sink(id, receiving: bytes, stdin: true)
            sink?.stdin(bytes)
            return sink
        case .data(let id, let bytes):
            let sink = sink(id, receiving: bytes, stdin: false)
            sink?.data(bytes)
            return sink
        case .abort(let id):
            engine.statistics.count(.aborted)
            logger.debug("the web server aborted the request", metadata: ["request": "\(id)"])
            sink(id)?.abort()
            return nil
        case .refused(let id, let reason):
            engine.statistics.count(.refused)
            if case .overloaded = reason { engine.statistics.count(.limit) }
            logger.warning("refused a request: \(reason)", metadata: ["request": "\(id)", "peer": "\(peer)"])
            return nil
        case .close(let reason):
            if reason.isOrdinary {
                logger.debug("closing connection: \(reason)")
            } else {
                if reason.isLimit { engine.statistics.count(.limit) }
                logger.warning("closing connection: \(reason)", metadata: ["peer": "\(peer)"])
            }
            let running = state.withLock { Array($0.sinks.values) }
            if !running.isEmpty { engine.statistics.abortedRequests.add(running.count, ordering: .relaxed) }
            for sink in running { sink.abort() }
            shutdownAfterWriters()
            return nil
        }
    }

    /// A held request went to its executor: from now on the request timeout
    /// counts (the input timeout bounded the wait before). Under the lock, and only
    /// while it is still this id's sink: a request that already ended (refused,
    /// aborted) is not watched, and one that ends later leaves the watchdog.
    func watchStarted(_ start: RequestStart, sink: HeldRequest) {
        guard let watchdog = engine.watchdog else { return }
        state.withLock { s in
            guard let current = s.sinks[start.requestID], current === sink else { return }
            watchdog.started(start, sink: sink, on: self)
        }
    }

    // MARK: While this thread runs a handler

    /// Whether exactly one request is in flight here (level 2 runs it on this
    /// thread when its input is complete).
    var servesOneRequest: Bool { state.withLock { $0.sinks.count == 1 } }

    /// Runs `body` — a request's handler, on this connection's thread — while the
    /// engine's poller reads the connection: management records are answered and
    /// an abort ends the request at once, as when this thread reads (SPEC §4).
    func runWatched(_ body: () -> Void) {
        watched.withLock { $0 = true }
        engine.poller.busy(self)
        body()
        watched.withLock { $0 = false }
        engine.poller.idle(self)
    }

    /// The poller's read (poller thread): feeds the machine and carries out what
    /// need not wait for the handler to return — replies, refusals, aborts, a close.
    /// At levels 0/1 anything else (a pipelined request's start, input for a
    /// libfcgi worker, which may block) stays queued, in order, for this
    /// connection's thread; at level 2 nothing blocks, so everything is carried
    /// out (a multiplexed request starts on a pool thread at once).
    func readWhileBusy(into buffer: inout [UInt8], poller: ConnectionPoller) {
        watched.withLock { watching in
            guard watching else { return }
            _ = readAndFeed(&buffer, waiting: false)
            if engine.server.threadingLevel == .multiplexed {
                carryOutPending(onServingThread: false)
            } else {
                carryOutSafeWhileBusy()
            }
            if !state.withLock({ $0.machine.isClosed || $0.machine.readClosed }) { poller.rearm(self) }
        }
    }

    /// Levels 0/1, on the poller: the queued actions that cannot block, up to the
    /// first that must wait for this connection's thread.
    private func carryOutSafeWhileBusy() {
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
    }

    /// A request that came after `maxRequests` were started: not served. Alone on
    /// the connection, the connection closes before any byte of a reply (a web
    /// server retries such a request on another connection, one of another
    /// process on the socket); beside others, it ends with FCGI_OVERLOADED.
    private func turnAway(_ id: UInt16) {
        let alone = state.withLock { s in
            s.startedAny = true
            s.sinks[id] = AnsweredRequest()
            return s.sinks.count == 1
        }
        logger.info("turned a request away: maxRequests (\(engine.server.maxRequests)) already started")
        var end: [UInt8] = []
        if alone {
            shutdownAfterWriters()
        } else {
            end = Record.endRequest(requestID: id, appStatus: 0, protocolStatus: .overloaded).encoded
        }
        endRequest(id, endRecords: end, counted: false)
    }

    /// Shuts the socket down once no writer is in the middle of a write: a request
    /// that just ended holds the write lock from telling the machine until its
    /// END_REQUEST is written, and that END_REQUEST must not be cut off.
    private func shutdownAfterWriters() {
        writeLock.withLock { _ in descriptor.shutdown(.readWrite) }
    }

    private func sink(_ id: UInt16) -> (any RequestSink)? {
        state.withLock { $0.sinks[id] }
    }

    /// The sink of a request `bytes` of input arrived for (noted for the input timeout).
    private func sink(_ id: UInt16, receiving bytes: [UInt8], stdin: Bool) -> (any RequestSink)? {
        state.withLock { s in
            if s.stalls.isActive { s.stalls.received(id, stdin: stdin, ended: bytes.isEmpty, at: MonotonicClock.seconds()) }
            return s.sinks[id]
        }
    }

    /// Writes bytes to the peer, serialized with every other writer; false once the
    /// connection is closed or the peer went away.
    func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        writeLock.withLock { closed in
            guard !closed else { return false }
            if !descriptor.sendAllResult(bytes) { closed = true }
            return !closed
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
            // Counted as served before the peer can see its end: a status page it
            // asks for next already counts it.
            if counted {
                engine.statistics.requestFinished()
                served.increment()
            }
            if !closed && !endRecords.withUnsafeBytes({ descriptor.sendAllResult($0) }) { closed = true }
            return needWake
        }
        // Counted out of the engine only once END_REQUEST is written: run()
        // returns (and the process may exit) when nothing is in flight.
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
            s.stalls.ended(requestID)
            s.pending += s.machine.requestEnded(requestID)
            // Parked while its requests ran: idle from now on.
            if s.parked && s.sinks.isEmpty { engine.poller.becameIdle(self) }
            return !s.pending.isEmpty || s.draining
        }
    }

    /// Stops reading new requests: closes now if idle, else after the requests in
    /// flight end. A connection that has not brought a request yet is left to
    /// bring its first one, unless `evenIfFresh`.
    func drain(evenIfFresh: Bool = false) {
        // The connection thread decides (it alone registers requests, so one being
        // started right now is not missed).
        state.withLock { s in
            s.draining = true
            if evenIfFresh { s.closeFresh = true }
            // Blocked in a read with nothing in flight: end the read (it returns 0,
            // and the idle connection closes).
            if s.inQuietRead && (s.startedAny || s.closeFresh) { descriptor.shutdown(.read) }
        }
        wake()
    }

    /// Makes sure a thread carries out what was queued: signals the serving
    /// thread, or takes a parked connection up again on a pool thread.
    private func wake() {
        let takeUp = state.withLock { s -> Bool in
            s.serving?.signal()
            return s.parked
        }
        if takeUp { engine.takeUp(self) }
    }
}

/// A request the connection answered itself (ping, status): its input is ignored.
final class AnsweredRequest: RequestSink {
    func stdin(_ bytes: [UInt8]) {}
    func data(_ bytes: [UInt8]) {}
    func abort() {}
}
