private import CEpoll

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Levels 0 and 1: reads for connections whose own thread is busy running a
/// request's handler (see ``LibFCGIWorker``'s inline path), so that management
/// records are still answered at once and an abort still ends the request at once
/// (SPEC §4). One thread and one epoll set for the whole server; a connection is in
/// the set only while its thread runs a handler, armed one-shot.
final class BusyConnectionWatcher: @unchecked Sendable {
    private let epollFD: Int32
    private let stopRead: Int32
    private let stopWrite: Int32
    private let watched = Guarded([Int32: Connection]())

    init() throws(ServerError) {
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw ServerError.errno("epoll_create1") }
        (stopRead, stopWrite) = try Socket.pair()
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: stopRead))
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, stopRead, &event) == 0 else { throw ServerError.errno("epoll_ctl") }
        try OSThread.spawn(stackSize: 128 << 10) { [self] in loop() }
    }

    /// Starts reading for `connection` (its thread is about to run a handler). A
    /// connection joins the epoll set on its first call and stays, disarmed, until
    /// ``forget(_:)``: arming and disarming it then costs two `EPOLL_CTL_MOD`s per
    /// request, less than half of an add and a delete.
    func watch(_ connection: Connection, firstTime: Bool) {
        var event = Self.armed(connection.fd)
        if firstTime {
            watched.withLock { $0[connection.fd] = connection }
            _ = epoll_ctl(epollFD, EPOLL_CTL_ADD, connection.fd, &event)
        } else {
            _ = epoll_ctl(epollFD, EPOLL_CTL_MOD, connection.fd, &event)
        }
    }

    /// Stops reading for `connection`; the caller has already told the connection
    /// (``Connection/runWatched(_:)``), so no read of the watcher's is under way.
    func unwatch(_ connection: Connection) {
        var event = epoll_event(events: 0, data: epoll_data_t(fd: connection.fd))
        _ = epoll_ctl(epollFD, EPOLL_CTL_MOD, connection.fd, &event)
    }

    /// Re-arms `fd` after an event (called under the connection's reader lock, so
    /// never after ``unwatch(_:)``).
    func rearm(_ fd: Int32) {
        var event = Self.armed(fd)
        _ = epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event)
    }

    /// Removes a connection that is closing (before its descriptor is closed).
    func forget(_ connection: Connection) {
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, connection.fd, nil)
        watched.withLock { _ = $0.removeValue(forKey: connection.fd) }
    }

    /// Ends the watcher's thread.
    func stop() {
        _ = shutdown(stopWrite, Int32(SHUT_RDWR))
    }

    private static func armed(_ fd: Int32) -> epoll_event {
        epoll_event(events: EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLONESHOT.rawValue, data: epoll_data_t(fd: fd))
    }

    private func loop() {
        var buffer = [UInt8](unsafeUninitializedCapacity: 65536) { _, count in count = 65536 }
        var events = [epoll_event](repeating: epoll_event(), count: 16)
        running: while true {
            let n = epoll_wait(epollFD, &events, Int32(events.count), -1)
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            for event in events[..<Int(n)] {
                let fd = event.data.fd
                if fd == stopRead { break running }
                guard let connection = watched.withLock({ $0[fd] }) else { continue }
                connection.readWhileBusy(into: &buffer, watcher: self)
            }
        }
        close(epollFD)
        close(stopRead)
        close(stopWrite)
    }
}
