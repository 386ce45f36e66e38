import FastCGIWire
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

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
///
/// This file reads and parks; `Connection+Requests.swift` carries out the
/// machine's actions and keeps the requests in flight; `Connection+Watched.swift`
/// is the poller's side while the serving thread runs a handler. The state is
/// shared across them (and so not `private`): its owners are in the table in
/// docs/ARCHITECTURE.md.
final class Connection: @unchecked Sendable {
    let descriptor: FileDescriptor
    let number: Int
    let peer: PeerAddress
    let engine: Engine
    /// When it was accepted (seconds since the epoch), for the status page.
    let openedAt = WallClock.seconds()
    /// Requests ended on it, for the status page.
    let served = Atomic<Int>(0)
    /// The server's logger with this connection's number (made when something
    /// is logged: setting metadata re-renders it, about 5,000 instructions with
    /// the stream handler — as much as a tenth of a short connection's cost).
    var logger: Logger {
        var logger = engine.server.logger
        logger[metadataKey: "connection"] = "\(number)"
        return logger
    }

    /// Logs at debug level, making ``logger`` only when that level is on.
    func debug(_ message: @autoclosure () -> Logger.Message, metadata: Logger.Metadata? = nil) {
        guard engine.server.logger.logLevel <= .debug else { return }
        logger.debug(message(), metadata: metadata)
    }

    /// How long a thread waits for the next request on a quiet connection before
    /// it parks it: back-to-back requests (a busy kept connection) keep their
    /// thread and cost one `read` each; a connection quiet for longer costs none.
    static let linger = 0.01

    struct State {
        var machine: ConnectionMachine
        var sinks = RequestTable<any RequestSink>()
        /// Actions decided but not yet carried out (by the serving thread).
        var pending: [ConnectionAction] = []
        /// Requests that ended before their sink was registered.
        var ended: Set<UInt16> = []
        var draining = false
        /// The stop's grace is over: a quiet connection closes now. Until then it
        /// is left to bring a request (a web server may be sending one on it
        /// right now), which is served, and the connection closes after it.
        var closeFresh = false
        /// Whether the web server is nginx, known from the first request: only
        /// nginx takes ``Connection/closingMark`` as the end of the connection
        /// (Apache takes a pending byte for a live one).
        var peerIsNginx: Bool?
        /// Draining, with nothing in flight and the grace over: close.
        var drainedOut: Bool { draining && sinks.isEmpty && !machine.isClosed && closeFresh }
        /// Draining, and the request that just ended was the last in flight:
        /// the connection closes with its END_REQUEST (with ``Connection/closingMark``
        /// behind it, so the web server does not keep it for its next request).
        var closesWithEnd: Bool { draining && sinks.isEmpty && pending.isEmpty && !machine.isClosed }
        /// The serving thread is in a blocking read with nothing in flight;
        /// ``drain()`` shuts the read side down to end it.
        var inQuietRead = false
        /// No thread serves the connection: it waits in the poller. Whoever turns
        /// this off (``unpark()``) takes it up.
        var parked = false
        /// The serving thread and what wakes it from its `poll` (nil while parked).
        var serving: (wakeup: Wakeup, thread: UInt)?
        /// Requests waiting for input, for the input timeout (the serving
        /// thread's wait ends at the next deadline).
        var stalls: InputStalls
        /// Handlers of multiplexed requests waiting for the serving thread
        /// (``runQueued()``), unless the poller hands them to pool threads first.
        var queued: [InlineJob] = []

        /// Nothing in flight, nothing to do: the connection may wait for input.
        var isQuiet: Bool { sinks.isEmpty && pending.isEmpty && !draining && !machine.readClosed }
        /// Requests in flight and nothing queued: until a request ends (which
        /// wakes the connection), new input or an input deadline (which the
        /// poller keeps) only matters, so the connection may wait in the poller
        /// like a quiet one — requests whose body is still arriving included: a
        /// stalled upload holds no thread.
        var onlyRunning: Bool {
            !sinks.isEmpty && pending.isEmpty && !draining && !machine.readClosed && queued.isEmpty
        }
    }

    let state: Guarded<State>
    /// Every write to the socket, what waits to be sent, and whether it may
    /// still be written to (`Connection+Output.swift`).
    let outbox: Guarded<Outbox>
    /// True while this connection's thread runs a handler and the engine's
    /// ``ConnectionPoller`` reads for it; held by the poller while it reads,
    /// so the thread takes its socket back between two of the poller's reads.
    let watched = Guarded(false)
    /// The second buffer of ``carryOutPending()`` (serving thread only).
    var spareActions: [ConnectionAction] = []

    init(descriptor: FileDescriptor, number: Int, peer: PeerAddress, engine: Engine) {
        self.descriptor = descriptor
        self.number = number
        self.peer = peer
        self.engine = engine
        let limits = engine.server.limits
        outbox = Guarded(
            Outbox(queued: SpillBuffer(memoryLimit: limits.outputMemory, directory: limits.temporaryDirectory)))
        state = Guarded(
            State(
                machine: ConnectionMachine(
                    multiplexing: engine.server.threadingLevel == .multiplexed, roles: engine.roles,
                    managementValues: engine.managementValues, limits: engine.server.connectionLimits),
                stalls: InputStalls(timeout: engine.server.connectionLimits.inputTimeout?.seconds)))
    }

    /// Serves the connection on the calling pool thread until it closes (then
    /// waits for its requests and lets go) or goes quiet (then parks it), reading
    /// into `buffer`. Called for a new connection and for each time a parked one
    /// is taken up; `idledOut` when the poller found it idle past the timeout.
    func serve(wakeup: Wakeup, buffer: inout [UInt8], idledOut: Bool = false) {
        // Not cleared first: a signal left from its last connection only wakes
        // this thread once for nothing (one system call saved per connection).
        state.withLock { $0.serving = (wakeup, OSThread.currentID) }
        if idledOut {
            logger.info(
                "closing idle connection", metadata: ["seconds": "\(engine.server.connectionLimits.idleTimeout?.seconds ?? 0)"])
            closedByPeer()
        }
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
        if mayPark {
            // A deadline due ends its requests now; any other waits in the poller.
            if let timeout, timeout <= 0 {
                endStalledRequests()
                return .done
            }
            timeout = min(timeout ?? .max, Int32(Self.linger * 1000))
        }
        let ready: [Bool]
        do {
            ready = try FileDescriptor.waitReadable(
                [readClosed ? nil : descriptor, wakeup.descriptor], timeoutMilliseconds: timeout.map { max(0, $0) } ?? -1)
        } catch {
            closedByPeer()
            return .done
        }
        if mayPark && !ready[0] && !ready[1] { return park(whileRunning: true, until: deadline) ? .parked : .done }
        if ready[1] { wakeup.clear() }
        if ready[0] { _ = readAndFeed(&buffer) }
        if deadline != nil { endStalledRequests() }
        return .done
    }

    /// Reads once and feeds what came to the machine (end of stream or a failure:
    /// the peer is gone). False when nothing was there: a receive timeout, or,
    /// without `waiting`, nothing to read now. `endingQuietRead` marks the quiet
    /// read over before the bytes are fed (a drain then wakes this thread instead
    /// of shutting the read side down).
    func readAndFeed(_ buffer: inout [UInt8], waiting: Bool = true, endingQuietRead: Bool = false) -> Bool {
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
    /// only run or wait for input (`whileRunning`: exempt from the idle timeout
    /// until they end; taken up at `deadline`, the next input deadline); false
    /// if something came up.
    private func park(whileRunning: Bool, until deadline: Double? = nil) -> Bool {
        state.withLock { s in
            guard whileRunning ? s.onlyRunning : s.isQuiet else { return false }
            s.parked = true
            s.serving = nil
            // Under the lock: registered before anyone can take it up and close it.
            engine.poller.park(self, idle: !whileRunning, until: deadline)
            return true
        }
    }

    /// Parks a connection that has not been served yet: the poller takes it up
    /// when its first input arrives (or it idles out).
    func parkFresh() {
        state.withLock { s in
            s.parked = true
            engine.poller.park(self, idle: true)
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
        let deadline = engine.server.shutdownSeconds
        _ = state.wait(until: { $0.sinks.isEmpty }, timeout: deadline) { _ in }
        state.withLock { $0.serving = nil }
        shutdownAfterWriters()
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

    /// Whether requests are in flight on it (a handler may wait for its input).
    var hasRequestsInFlight: Bool { state.withLock { !$0.sinks.isEmpty } }

    /// What the full status page shows of it (any thread).
    var snapshot: ConnectionSnapshot {
        let (parked, inFlight) = state.withLock { s in (s.parked, s.sinks.count) }
        return ConnectionSnapshot(
            number: number, peer: peer.description, openedAt: openedAt, parked: parked, inFlight: inFlight,
            served: served.value)
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
            if s.inQuietRead && s.closeFresh { descriptor.shutdown(.read) }
        }
        wake()
    }

    /// Makes sure a thread carries out what was queued: signals the serving
    /// thread, or takes a parked connection up again on a pool thread. The
    /// serving thread itself (a handler it ran just ended) needs no signal: it
    /// carries out what is queued before it waits again.
    func wake() {
        let takeUp = state.withLock { s -> Bool in
            if let serving = s.serving, serving.thread != OSThread.currentID { serving.wakeup.signal() }
            return s.parked
        }
        if takeUp { engine.takeUp(self) }
    }
}

/// The sending side of a connection (under its outbox's lock): shut down once,
/// whoever gets there first — the machine's close or the connection's end.
enum SendSide {
    case open
    /// A write failed (the peer went away, or stopped reading past the send
    /// timeout): nothing more is sent.
    case failed
    case shutDown

    mutating func shutDown(_ descriptor: FileDescriptor) {
        guard self != .shutDown else { return }
        descriptor.shutdown(.readWrite)
        self = .shutDown
    }
}
