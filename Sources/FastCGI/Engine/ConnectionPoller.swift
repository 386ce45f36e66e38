import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The one thread that watches connections no thread is reading, in one epoll set:
///
/// - **Parked connections** (every level): a connection with nothing in flight
///   gives its thread back to the pool after ``Connection/linger`` and is parked
///   here. When input arrives (or ``Server/exit()`` drains it) a pool thread takes
///   it up again; one idle past ``ConnectionLimits/idleTimeout`` is closed. So an
///   idle connection costs no thread: 10,000 of them cost one.
/// - **Busy connections**: while a connection's serving thread runs a request's
///   handler (the inline path of ``LibFCGIWorker`` and ``SwiftExecutor``) the poller reads for it, so
///   management records are still answered and an abort still ends the request
///   (SPEC §4). Most handlers return in well under a millisecond, and the thread
///   reads again when they do; so a connection is only *noted* as busy (a lock and
///   a clock read, no system call) and the poller, ticking every ``tick``
///   milliseconds while any connection is busy, arms epoll for one busy for
///   ``patience`` milliseconds. A record that arrives while a handler runs is
///   handled within about `tick + patience` ms, or at once when the handler
///   returns first.
///
/// Entries are keyed by connection number, never by descriptor (see ``Epoll``).
final class ConnectionPoller: @unchecked Sendable {
    /// How often the poller looks at busy connections, in milliseconds.
    static let tick: Int32 = 2
    /// How long a handler runs before its connection is watched, in milliseconds.
    static let patience: Int = 2
    /// Idle ticks before the poller stops ticking (until a connection is busy again).
    static let parkAfter = 50

    private struct Busy {
        let connection: Connection
        let since: Int
        var armed = false
    }

    private struct State {
        /// Connections whose thread runs a handler.
        var busy: [Int: Busy] = [:]
        /// Parked connections, since when they are idle (milliseconds; nil
        /// while requests run on them: not swept), and when to take them up
        /// anyway (a request's input deadline, milliseconds).
        var parked: [Int: (connection: Connection, since: Int?, deadline: Int?)] = [:]
        /// Connections in the epoll set (armed or not).
        var registered: Set<Int> = []
        /// The poller waits without ticking: ``busy(_:)`` must wake it.
        var sleeping = false
        var stopped = false
    }

    private let epoll: Epoll
    private let wakeup: Wakeup
    private let state = Guarded(State())
    private let idleTimeout: Double?
    private let logger: Logger
    /// Takes up a connection on a pool thread (the engine's).
    private let resume: @Sendable (Connection, _ idledOut: Bool) -> Void

    /// The poller thread's ``OSThread/currentID``, set as it starts.
    private let threadID = Atomic<UInt>(0)

    /// Whether the caller is the poller's thread, which must never wait for a
    /// handler.
    var isCurrentThread: Bool { threadID.load(ordering: .relaxed) == OSThread.currentID }

    /// The key of the poller's own wake-up (connection numbers start at 1).
    private static let wakeupKey: UInt64 = 0

    init(
        idleTimeout: Double?, logger: Logger, resume: @escaping @Sendable (Connection, _ idledOut: Bool) -> Void
    ) throws {
        epoll = try Epoll()
        wakeup = try Wakeup()
        try epoll.watch(wakeup.descriptor, key: Self.wakeupKey)
        self.idleTimeout = idleTimeout
        self.logger = logger
        self.resume = resume
        try OSThread.spawn(stackSize: 128 << 10) { [self] in
            threadID.store(OSThread.currentID, ordering: .relaxed)
            loop()
        }
    }

    // MARK: Parked connections (called under the connection's state lock)

    /// Parks `connection`: the poller takes it up again when it is readable. Called
    /// by the connection under its state lock, so it is registered before anyone
    /// can take it up and close it (which ``forget(_:)``s it). A connection whose
    /// requests still run (not `idle`) is not swept until ``becameIdle(_:)``.
    func park(_ connection: Connection, idle: Bool = true, until deadline: Double? = nil) {
        let now = MonotonicClock.coarseMilliseconds()
        // The input deadline on the coarse clock (the input timeout is seconds).
        let due = deadline.map { now + Int((($0 - MonotonicClock.seconds()) * 1000).rounded(.up)) }
        let (failure, wakeForSweep) = state.withLock { s -> (SystemError?, Bool) in
            // A poller asleep with nothing parked has no sweep to do: now it has;
            // one asleep has a deadline to keep.
            let wakeForSweep = s.sleeping && (due != nil || (idle && idleTimeout != nil && s.parked.isEmpty))
            s.parked[connection.number] = (connection, idle ? now : nil, due)
            let adding = s.registered.insert(connection.number).inserted
            return (epoll.armResult(connection.descriptor, key: UInt64(connection.number), adding: adding), wakeForSweep)
        }
        // Cannot happen for a live socket; if it does, the idle sweep still ends it.
        if let failure { logger.error("cannot watch connection \(connection.number): \(failure)") }
        if wakeForSweep { wake() }
    }

    /// The last request of a connection parked while they ran ended: its idle
    /// time starts now (under the connection's state lock, as ``park(_:idle:)``).
    func becameIdle(_ connection: Connection) {
        let now = MonotonicClock.coarseMilliseconds()
        // Parked, so the poller already sweeps (it never sleeps with parked ones).
        state.withLock { s in
            if s.parked[connection.number] != nil && s.parked[connection.number]?.since == nil {
                s.parked[connection.number]?.since = now
            }
        }
    }

    // MARK: Busy connections (levels 0 and 1)

    /// `connection`'s thread is about to run a handler.
    func busy(_ connection: Connection) {
        let now = MonotonicClock.coarseMilliseconds()
        let wasSleeping = state.withLock { s in
            s.busy[connection.number] = Busy(connection: connection, since: now)
            defer { s.sleeping = false }
            return s.sleeping
        }
        if wasSleeping { wake() }
    }

    /// `connection`'s handler returned; the caller has already told the connection
    /// (``Connection/runWatched(_:)``), so no read of the poller's is under way.
    func idle(_ connection: Connection) {
        state.withLock { s in
            guard let entry = s.busy.removeValue(forKey: connection.number), entry.armed else { return }
            // Disarmed under the lock: the poller cannot arm it again meanwhile.
            try? epoll.disarm(connection.descriptor, key: UInt64(connection.number))
        }
    }

    /// Re-arms a busy connection after an event (called under the connection's
    /// reader lock, so never after ``idle(_:)``).
    func rearm(_ connection: Connection) {
        try? epoll.arm(connection.descriptor, key: UInt64(connection.number), adding: false)
    }

    /// Removes a connection that is closing (before its descriptor can be let go).
    func forget(_ connection: Connection) {
        state.withLock { s in
            s.busy.removeValue(forKey: connection.number)
            s.parked.removeValue(forKey: connection.number)
            if s.registered.remove(connection.number) != nil { try? epoll.remove(connection.descriptor) }
        }
    }

    /// Ends the poller's thread.
    func stop() {
        state.withLock { $0.stopped = true }
        wake()
    }

    private func wake() { wakeup.signal() }

    // MARK: The poller's thread

    private enum Event {
        case busyReadable(Connection)
        case parkedReadable(Connection)
    }

    private func loop() {
        var buffer = [UInt8](unsafeUninitializedCapacity: 65536) { _, count in count = 65536 }
        var keys: [UInt64] = []
        var idleTicks = 0
        while let timeout = nextTimeout(idleTicks: idleTicks) {
            keys.removeAll(keepingCapacity: true)
            do {
                try epoll.wait(timeoutMilliseconds: timeout, into: &keys)
            } catch {
                logger.critical("the connection poller stopped: \(error)")
                return
            }
            for key in keys {
                if key == Self.wakeupKey {
                    wakeup.clear()
                    continue
                }
                switch event(Int(key)) {
                case .busyReadable(let connection)?: connection.readWhileBusy(into: &buffer, poller: self)
                case .parkedReadable(let connection)?: resume(connection, false)
                case nil: continue
                }
            }
            idleTicks = armDueAndSweep(idleTicks: idleTicks)
        }
    }

    /// How long to wait: a tick while connections are busy (or were lately), a
    /// sweep interval while connections are parked with an idle timeout (or
    /// until the next input deadline), else for ever; nil once stopped.
    private func nextTimeout(idleTicks: Int) -> Int32? {
        let now = MonotonicClock.coarseMilliseconds()
        return state.withLock { s in
            if s.stopped { return nil }
            if !s.busy.isEmpty || idleTicks < Self.parkAfter { return Self.tick }
            s.sleeping = true
            var timeout = idleTimeout.map { Int(min(1000, max(10, $0 * 250))) }
            guard !s.parked.isEmpty else { return -1 }
            for entry in s.parked.values {
                if let due = entry.deadline { timeout = min(timeout ?? .max, max(1, due - now)) }
            }
            return timeout.map { Int32($0) } ?? -1
        }
    }

    private func event(_ number: Int) -> Event? {
        state.withLock { s in
            if let busy = s.busy[number] { return .busyReadable(busy.connection) }
            if let parked = s.parked.removeValue(forKey: number) { return .parkedReadable(parked.connection) }
            return nil
        }
    }

    /// Arms the connections busy for longer than ``patience`` (and hands the
    /// level-2 handlers queued behind the one running to the pool) and closes
    /// parked ones idle past the timeout; returns the new count of idle ticks.
    private func armDueAndSweep(idleTicks: Int) -> Int {
        let now = MonotonicClock.coarseMilliseconds()
        let (ticks, expired, heldUp, due) = state.withLock { s -> (Int, [Connection], [Connection], [Connection]) in
            let due = s.busy.filter { !$0.value.armed && now - $0.value.since >= Self.patience }.keys
            var heldUp: [Connection] = []
            for number in due {
                guard let connection = s.busy[number]?.connection else { continue }
                let adding = s.registered.insert(number).inserted
                try? epoll.arm(connection.descriptor, key: UInt64(number), adding: adding)
                s.busy[number]?.armed = true
                heldUp.append(connection)
            }
            var expired: [Connection] = []
            // Input deadlines come first: the serving thread ends the stalled requests.
            var deadlineDue: [Connection] = []
            for (number, entry) in s.parked where entry.deadline.map({ now >= $0 }) ?? false {
                deadlineDue.append(entry.connection)
                s.parked.removeValue(forKey: number)
            }
            if let idleTimeout {
                let limit = Int(idleTimeout * 1000)
                for (number, entry) in s.parked where entry.since.map({ now - $0 >= limit }) ?? false {
                    expired.append(entry.connection)
                    s.parked.removeValue(forKey: number)
                }
            }
            return (s.busy.isEmpty ? idleTicks + 1 : 0, expired, heldUp, deadlineDue)
        }
        // Outside the poller's lock (a connection's lock comes before it).
        for connection in heldUp { connection.releaseQueued() }
        for connection in expired { resume(connection, true) }
        for connection in due { resume(connection, false) }
        return ticks
    }
}
