private import CEpoll

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Levels 0 and 1: reads for connections whose own thread is busy running a
/// request's handler (see ``LibFCGIWorker``'s inline path), so that management
/// records are still answered and an abort still ends the request while the
/// handler runs (SPEC §4). One thread and one epoll set for the whole server.
///
/// Most handlers return in well under a millisecond, and while a handler runs its
/// connection's thread is not reading anyway; so a connection is only *noted* as
/// busy (a lock and a clock read, no system call) and the watcher, which ticks
/// every ``tick`` milliseconds while any connection is busy, arms epoll for one
/// that has been busy for ``patience`` milliseconds. A record that arrives while
/// a handler runs is therefore handled within about `tick + patience` ms, or at
/// once when the handler returns first — never held for the handler's whole run.
/// Arming on every request instead cost two `epoll_ctl` calls per request. After
/// ``parkAfter`` idle ticks the watcher sleeps until a connection is busy again.
final class BusyConnectionWatcher: @unchecked Sendable {
    /// How often the watcher looks at busy connections, in milliseconds.
    static let tick: Int32 = 2
    /// How long a handler runs before its connection is watched, in milliseconds.
    static let patience: Int = 2
    /// Idle ticks before the watcher sleeps until woken.
    static let parkAfter = 50

    private struct Entry {
        let connection: Connection
        let since: Int
        var armed = false
    }

    private struct State {
        /// Connections whose thread runs a handler, by descriptor.
        var busy: [Int32: Entry] = [:]
        /// Descriptors in the epoll set (armed or not).
        var registered: Set<Int32> = []
        /// The watcher sleeps without a timeout: ``busy(_:)`` must wake it.
        var parked = false
        var stopped = false
    }

    private let epollFD: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let state = Guarded(State())

    init() throws(ServerError) {
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw ServerError.errno("epoll_create1") }
        (wakeRead, wakeWrite) = try Socket.pair()
        _ = fcntl(wakeRead, F_SETFL, O_NONBLOCK)
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: wakeRead))
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeRead, &event) == 0 else { throw ServerError.errno("epoll_ctl") }
        try OSThread.spawn(stackSize: 128 << 10) { [self] in loop() }
    }

    /// `connection`'s thread is about to run a handler.
    func busy(_ connection: Connection) {
        let now = Self.milliseconds()
        let wake = state.withLock { s in
            s.busy[connection.fd] = Entry(connection: connection, since: now)
            defer { s.parked = false }
            return s.parked
        }
        if wake { poke() }
    }

    /// `connection`'s handler returned; the caller has already told the connection
    /// (``Connection/runWatched(_:)``), so no read of the watcher's is under way.
    func idle(_ connection: Connection) {
        state.withLock { s in
            guard let entry = s.busy.removeValue(forKey: connection.fd), entry.armed else { return }
            // Disarmed under the lock: the watcher cannot arm it again meanwhile.
            var event = epoll_event(events: 0, data: epoll_data_t(fd: connection.fd))
            _ = epoll_ctl(epollFD, EPOLL_CTL_MOD, connection.fd, &event)
        }
    }

    /// Re-arms `fd` after an event (called under the connection's reader lock, so
    /// never after ``idle(_:)``).
    func rearm(_ fd: Int32) {
        var event = Self.armed(fd)
        _ = epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event)
    }

    /// Removes a connection that is closing (before its descriptor is closed).
    func forget(_ connection: Connection) {
        state.withLock { s in
            s.busy.removeValue(forKey: connection.fd)
            if s.registered.remove(connection.fd) != nil { _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, connection.fd, nil) }
        }
    }

    /// Ends the watcher's thread.
    func stop() {
        state.withLock { $0.stopped = true }
        poke()
    }

    private func poke() {
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWrite, &byte, 1)
    }

    private static func armed(_ fd: Int32) -> epoll_event {
        epoll_event(events: EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLONESHOT.rawValue, data: epoll_data_t(fd: fd))
    }

    /// A coarse monotonic clock in milliseconds (read through the vDSO: no system call).
    private static func milliseconds() -> Int {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &now)
        return now.tv_sec * 1000 + now.tv_nsec / 1_000_000
    }

    private func loop() {
        var buffer = [UInt8](unsafeUninitializedCapacity: 65536) { _, count in count = 65536 }
        var events = [epoll_event](repeating: epoll_event(), count: 16)
        var idleTicks = 0
        while true {
            let timeout = state.withLock { s -> Int32? in
                if s.stopped { return nil }
                guard s.busy.isEmpty && idleTicks >= Self.parkAfter else { return Self.tick }
                s.parked = true
                return -1
            }
            guard let timeout else { break }
            let n = epoll_wait(epollFD, &events, Int32(events.count), timeout)
            if n < 0 && errno != EINTR { break }
            for event in events[..<Int(max(n, 0))] {
                let fd = event.data.fd
                if fd == wakeRead {
                    var sink = [UInt8](repeating: 0, count: 64)
                    while Glibc.read(wakeRead, &sink, sink.count) > 0 {}
                    continue
                }
                guard let connection = state.withLock({ $0.busy[fd]?.connection }) else { continue }
                connection.readWhileBusy(into: &buffer, watcher: self)
            }
            // Arm the connections busy for longer than `patience`.
            let now = Self.milliseconds()
            state.withLock { s in
                idleTicks = s.busy.isEmpty ? idleTicks + 1 : 0
                let due = s.busy.filter { !$0.value.armed && now - $0.value.since >= Self.patience }.keys
                for fd in due {
                    var event = Self.armed(fd)
                    let operation = s.registered.insert(fd).inserted ? EPOLL_CTL_ADD : EPOLL_CTL_MOD
                    _ = epoll_ctl(epollFD, operation, fd, &event)
                    s.busy[fd]?.armed = true
                }
            }
        }
        close(epollFD)
        close(wakeRead)
        close(wakeWrite)
    }
}
