import Logging

/// The one thread that sends what connections could not send at once, in one
/// epoll set: a connection whose peer reads slower than its handlers write
/// queues the rest in its ``Outbox`` (memory, then a file) and is watched here
/// for room (`EPOLLOUT`). So no handler's thread waits on a slow reader — it
/// writes, queues and goes on — and a peer that takes nothing for
/// ``ConnectionLimits/sendTimeout`` has its connection ended here (logged and
/// counted), which aborts its requests and frees what they held.
///
/// Entries are keyed by connection number, never by descriptor (see ``Epoll``).
/// The flusher holds a watched connection until its queue is sent or dropped,
/// so a connection that closed with output still queued lives until then.
final class OutputFlusher: @unchecked Sendable {
    private struct State {
        var watched: [Int: any FlushTarget] = [:]
        var stopped = false
    }

    private let epoll: Epoll
    private let wakeup: Wakeup
    private let state = Guarded(State())
    private let sendTimeout: Double?
    private let logger: Logger
    /// Counts a send timeout (the engine's statistics).
    private let timedOut: @Sendable () -> Void
    /// The clock the send timeout is kept by (a fake one in tests).
    private let clock: @Sendable () -> Double

    private static let wakeupKey: UInt64 = 0

    init(
        sendTimeout: Double?, logger: Logger, clock: @escaping @Sendable () -> Double = { MonotonicClock.seconds() },
        timedOut: @escaping @Sendable () -> Void
    ) throws {
        epoll = try Epoll()
        wakeup = try Wakeup()
        try epoll.watch(wakeup.descriptor, key: Self.wakeupKey)
        self.sendTimeout = sendTimeout
        self.logger = logger
        self.clock = clock
        self.timedOut = timedOut
        try OSThread.spawn(stackSize: 128 << 10) { [self] in loop() }
    }

    /// `connection` has output queued (its writer set ``Outbox/watched``): send
    /// it as the peer takes it.
    func watch(_ connection: any FlushTarget) {
        let (failure, wasEmpty) = state.withLock { s -> (SystemError?, Bool) in
            let wasEmpty = s.watched.isEmpty
            let adding = s.watched.updateValue(connection, forKey: connection.number) == nil
            return (
                epoll.armResult(connection.descriptor, key: UInt64(connection.number), adding: adding, forOutput: true),
                wasEmpty
            )
        }
        if let failure { logger.error("cannot watch connection \(connection.number) for output: \(failure)") }
        // The loop waits without a timeout while nothing is watched: it has a
        // send timeout to keep now.
        if wasEmpty { wakeup.signal() }
    }

    /// Waits until every queue is sent or dropped, for at most `timeout`
    /// seconds (a stopping server, before the process exits); false if some
    /// output was still queued then.
    func waitUntilSent(timeout: Double) -> Bool {
        state.wait(until: { $0.watched.isEmpty }, timeout: timeout) { _ in true } ?? false
    }

    /// Ends the flusher's thread (what is still queued is dropped with it).
    func stop() {
        state.withLock { $0.stopped = true }
        wakeup.signal()
    }

    private func loop() {
        var staging = [UInt8](repeating: 0, count: 64 << 10)
        var keys: [UInt64] = []
        while let timeout = nextTimeout() {
            keys.removeAll(keepingCapacity: true)
            do {
                try epoll.wait(timeoutMilliseconds: timeout, into: &keys)
            } catch {
                logger.critical("the output flusher stopped: \(error)")
                return
            }
            let now = clock()
            for key in keys {
                if key == Self.wakeupKey {
                    wakeup.clear()
                    continue
                }
                guard let connection = state.withLock({ $0.watched[Int(key)] }) else { continue }
                let outcome = connection.flushQueued(staging: &staging, now: now)
                settle(connection, outcome)
            }
            endTimedOut()
        }
    }

    /// After a flush: re-arm a connection still waiting for room, let go of one
    /// whose queue is gone — unless a writer queued more meanwhile (it saw
    /// ``Outbox/watched`` cleared and called ``watch(_:)``, or is about to).
    private func settle(_ connection: any FlushTarget, _ outcome: Outbox.FlushOutcome) {
        let key = UInt64(connection.number)
        state.withLock { s in
            if outcome == .pending || connection.outputWatched {
                try? epoll.arm(connection.descriptor, key: key, adding: false, forOutput: true)
            } else if s.watched.removeValue(forKey: connection.number) != nil {
                try? epoll.remove(connection.descriptor)
            }
        }
    }

    /// How long to wait: until the next send-timeout check while anything is
    /// watched, else for ever; nil once stopped.
    private func nextTimeout() -> Int32? {
        state.withLock { s in
            if s.stopped { return nil }
            guard let sendTimeout, !s.watched.isEmpty else { return -1 }
            return Int32(min(1000, max(10, sendTimeout * 250)))
        }
    }

    /// Ends the connections whose peer took nothing for the send timeout.
    private func endTimedOut() {
        guard let sendTimeout else { return }
        let watched = state.withLock { Array($0.watched.values) }
        let now = clock()
        for connection in watched where connection.endIfSendTimedOut(now: now, timeout: sendTimeout) {
            state.withLock { s in
                if s.watched.removeValue(forKey: connection.number) != nil { try? epoll.remove(connection.descriptor) }
            }
            timedOut()
            connection.sendTimedOut(after: sendTimeout)
        }
    }
}

/// What the flusher needs of a connection (a ``Connection``; a fake one on a
/// socketpair in the flusher's tests).
protocol FlushTarget: AnyObject, Sendable {
    /// The key of its epoll entry.
    var number: Int { get }
    var descriptor: FileDescriptor { get }
    /// Sends what is queued until the socket is full (`now`: for its progress).
    func flushQueued(staging: inout [UInt8], now: Double) -> Outbox.FlushOutcome
    /// Whether a writer queued output the flusher has not seen sent yet.
    var outputWatched: Bool { get }
    /// Ends it if the peer took nothing for `timeout` seconds before `now`.
    func endIfSendTimedOut(now: Double, timeout: Double) -> Bool
    /// It was ended by the send timeout: say so in its log.
    func sendTimedOut(after seconds: Double)
}
