private import CEpoll

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// An epoll set whose entries are named by a key of the caller's (a connection's
/// number, never its descriptor's: an event still queued for a connection that
/// closed then matches nothing, even when its number went to a new socket).
/// Entries are one-shot: after an event an entry is disarmed until ``arm(_:key:)``.
final class Epoll: Sendable {
    private let descriptor: FileDescriptor

    init() throws(SystemError) {
        let raw = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard raw >= 0 else { throw SystemError("epoll_create1") }
        descriptor = FileDescriptor(adopting: raw)
    }

    /// Watches `fd` for input (or the peer's close) once — `forOutput`: for room
    /// to send (or an error) — reporting `key`: adds it on first use, re-arms it after.
    func arm(_ fd: FileDescriptor, key: UInt64, adding: Bool, forOutput: Bool = false) throws(SystemError) {
        let events = forOutput ? EPOLLOUT.rawValue : EPOLLIN.rawValue | EPOLLRDHUP.rawValue
        var event = epoll_event(events: events | EPOLLONESHOT.rawValue, data: epoll_data_t(u64: key))
        let operation = adding ? EPOLL_CTL_ADD : EPOLL_CTL_MOD
        _ = try SystemCall.retrying("epoll_ctl") { Int(epoll_ctl(descriptor.raw, operation, fd.raw, &event)) }
    }

    /// ``arm(_:key:adding:)``, its failure as a value (nil: armed).
    func armResult(_ fd: FileDescriptor, key: UInt64, adding: Bool, forOutput: Bool = false) -> SystemError? {
        do {
            try arm(fd, key: key, adding: adding, forOutput: forOutput)
            return nil
        } catch {
            return error
        }
    }

    /// Watches `fd` for input for good (level-triggered): a wake-up's descriptor.
    func watch(_ fd: FileDescriptor, key: UInt64) throws(SystemError) {
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(u64: key))
        _ = try SystemCall.retrying("epoll_ctl") { Int(epoll_ctl(descriptor.raw, EPOLL_CTL_ADD, fd.raw, &event)) }
    }

    /// Watches a listening socket for connections, exclusively (level-triggered,
    /// `EPOLLEXCLUSIVE`): of the epoll sets watching it with someone waiting,
    /// one is woken per connection, not all — the acceptor threads each have
    /// their own set.
    func watchExclusive(_ fd: Int32, key: UInt64) throws(SystemError) {
        var event = epoll_event(events: EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue, data: epoll_data_t(u64: key))
        _ = try SystemCall.retrying("epoll_ctl") { Int(epoll_ctl(descriptor.raw, EPOLL_CTL_ADD, fd, &event)) }
    }

    /// Waits for ever for an entry to fire: the keys that did (one or two; no
    /// allocation, for a loop that runs once per connection).
    func waitAny() throws(SystemError) -> (UInt64, UInt64?) {
        var events = (epoll_event(), epoll_event())
        let n = withUnsafeMutableBytes(of: &events) { raw in
            Result { () throws(SystemError) -> Int in
                try SystemCall.retrying("epoll_wait") {
                    Int(epoll_wait(descriptor.raw, raw.baseAddress!.assumingMemoryBound(to: epoll_event.self), 2, -1))
                }
            }
        }
        return (events.0.data.u64, try n.get() > 1 ? events.1.data.u64 : nil)
    }

    /// Stops reporting `fd` (before its owner lets it go).
    func disarm(_ fd: FileDescriptor, key: UInt64) throws(SystemError) {
        var event = epoll_event(events: 0, data: epoll_data_t(u64: key))
        _ = try SystemCall.retrying("epoll_ctl") { Int(epoll_ctl(descriptor.raw, EPOLL_CTL_MOD, fd.raw, &event)) }
    }

    /// Removes `fd` from the set.
    func remove(_ fd: FileDescriptor) throws(SystemError) {
        _ = try SystemCall.retrying("epoll_ctl") { Int(epoll_ctl(descriptor.raw, EPOLL_CTL_DEL, fd.raw, nil)) }
    }

    /// Waits up to `timeoutMilliseconds` (-1: for ever) and appends the keys of the
    /// entries that fired to `keys`.
    func wait(timeoutMilliseconds: Int32, into keys: inout [UInt64]) throws(SystemError) {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        let n = try SystemCall.retrying("epoll_wait") {
            Int(epoll_wait(descriptor.raw, &events, Int32(events.count), timeoutMilliseconds))
        }
        for event in events[..<n] { keys.append(event.data.u64) }
    }
}
