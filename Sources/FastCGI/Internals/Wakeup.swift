private import CEpoll

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Wakes a thread that waits in `poll` or `epoll_wait`: an `eventfd` (one
/// descriptor, where a pipe takes two). Signals coalesce: many ``signal()``s
/// before one ``clear()`` wake the waiter once. A late signal only causes a
/// spurious wake-up, never a write to a descriptor someone else owns: the
/// eventfd is a ``FileDescriptor``, closed after its last user let go.
final class Wakeup: Sendable {
    let descriptor: FileDescriptor

    init() throws(SystemError) {
        let raw = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard raw >= 0 else { throw SystemError("eventfd") }
        descriptor = FileDescriptor(adopting: raw)
    }

    /// Makes the descriptor readable until ``clear()``.
    func signal() {
        var one: UInt64 = 1
        // EAGAIN only when the counter is about to overflow: already signalled.
        _ = try? SystemCall.retrying("write(eventfd)") { Glibc.write(descriptor.raw, &one, 8) }
    }

    /// Consumes the signals so far.
    func clear() {
        var count: UInt64 = 0
        _ = try? SystemCall.retrying("read(eventfd)") { Glibc.read(descriptor.raw, &count, 8) }
    }
}
