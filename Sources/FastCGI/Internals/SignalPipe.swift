#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Signals as readable events: the signals routed to this subscriber arrive on
/// ``reader`` (readable while any is waiting) and are taken with
/// ``next(timeout:)``. Every subscriber in the process shares one pipe and one
/// thread (``SignalHub``): a second server or a process manager in the same
/// process adds a subscriber, and never replaces the pipe another one reads.
final class SignalPipe: Sendable {
    /// Readable while a signal for this subscriber is waiting.
    var reader: FileDescriptor { wakeup.descriptor }
    private let wakeup: Wakeup
    private let arrived = Guarded<[Int32]>([])
    private let id: Int

    /// Routes `signals` to this subscriber. Signals blocked by whoever started
    /// the process (the mask is inherited across exec) are unblocked in the
    /// calling thread, whose mask threads started later inherit.
    init(routing signals: [Int32]) throws(SystemError) {
        let wakeup = try Wakeup()
        let arrived = arrived
        self.wakeup = wakeup
        id = try SignalHub.shared().subscribe(signals) { number in
            arrived.withLock { $0.append(number) }
            wakeup.signal()
        }
    }

    deinit { try? SignalHub.shared().unsubscribe(id) }

    /// The signals that arrived, waiting for at most `timeout` seconds (nil: no
    /// limit) for the first; empty when the time ran out.
    func next(timeout: Double?) -> [Int32] {
        let readable = (try? FileDescriptor.waitReadable([reader], timeoutMilliseconds: Self.milliseconds(timeout))) ?? [false]
        guard readable[0] else { return [] }
        wakeup.clear()
        return arrived.withLock { numbers in
            defer { numbers.removeAll() }
            return numbers
        }
    }

    static func milliseconds(_ seconds: Double?) -> Int32 {
        guard let seconds else { return -1 }
        return Int32(max(0, min(seconds, 3600)) * 1000)
    }
}

/// The process's one signal pipe: a handler writes each signal's number to it
/// (the only thing a handler may safely do), and one thread reads it and hands
/// the number to every subscriber that asked for it. Made on first use and
/// kept for the process's life, so its write end never closes under a handler.
final class SignalHub: Sendable {
    private struct Subscriber {
        let signals: Set<Int32>
        let deliver: @Sendable (Int32) -> Void
    }

    private struct State {
        var subscribers: [Int: Subscriber] = [:]
        var nextID = 0
        /// Signals whose handler writes to the pipe.
        var routed: Set<Int32> = []
    }

    private let state = Guarded(State())
    private let reader: FileDescriptor
    /// The write end, for the handler (a plain global: signal handlers cannot
    /// capture context). Set once, before any handler is installed, and never
    /// closed.
    nonisolated(unsafe) private static var writeEnd: Int32 = -1
    private static let made = Guarded<Result<SignalHub, SystemError>?>(nil)

    /// The process's hub, made on first use.
    static func shared() throws(SystemError) -> SignalHub {
        let hub = made.withLock { made in
            if made == nil { made = Result { () throws(SystemError) in try SignalHub() } }
            return made!
        }
        return try hub.get()
    }

    private init() throws(SystemError) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw SystemError("pipe") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)  // a burst of signals must not block the handler
        reader = FileDescriptor(adopting: fds[0])
        Self.writeEnd = fds[1]
        let reader = reader
        let state = state
        do {
            try OSThread.spawn(stackSize: 64 << 10) {
                var buffer = [UInt8](repeating: 0, count: 64)
                while true {
                    let count = buffer.withUnsafeMutableBytes { (try? reader.read(into: $0)) ?? 0 }
                    guard count > 0 else { continue }
                    let subscribers = state.withLock { Array($0.subscribers.values) }
                    for number in buffer.prefix(count).map({ Int32($0) }) {
                        for subscriber in subscribers where subscriber.signals.contains(number) {
                            subscriber.deliver(number)
                        }
                    }
                }
            }
        } catch {
            throw SystemError("cannot start the signal thread")
        }
    }

    /// Routes `signals` to `deliver` (called on the hub's thread); returns the
    /// subscription's id.
    func subscribe(_ signals: [Int32], deliver: @escaping @Sendable (Int32) -> Void) -> Int {
        let (id, newSignals) = state.withLock { s in
            s.nextID += 1
            s.subscribers[s.nextID] = Subscriber(signals: Set(signals), deliver: deliver)
            let new = Set(signals).subtracting(s.routed)
            s.routed.formUnion(new)
            return (s.nextID, new)
        }
        var set = sigset_t()
        sigemptyset(&set)
        for number in newSignals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                let saved = errno
                var byte = UInt8(truncatingIfNeeded: number)
                _ = Glibc.write(SignalHub.writeEnd, &byte, 1)
                errno = saved
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = Int32(SA_RESTART)
            sigaction(number, &action, nil)
        }
        for number in signals { sigaddset(&set, number) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        return id
    }

    /// Ends a subscription (its signals keep their handler: they are dropped
    /// when no one subscribes to them).
    func unsubscribe(_ id: Int) {
        state.withLock { _ = $0.subscribers.removeValue(forKey: id) }
    }
}
