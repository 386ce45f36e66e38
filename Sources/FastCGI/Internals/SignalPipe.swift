#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Signals turned into bytes on a pipe: the handler only writes the signal's
/// number, so nothing unsafe runs in signal context, and the reader takes them
/// in its own loop (a `poll` with the other things it waits for). SA_RESTART
/// keeps other threads' calls from failing with EINTR. One per process.
final class SignalPipe: Sendable {
    /// Readable when a signal arrived; each byte is one signal's number.
    let reader: FileDescriptor
    /// The write end, for the handler (a plain global: signal handlers cannot
    /// capture context). Set once, before any handler is installed.
    nonisolated(unsafe) private static var writeEnd: Int32 = -1
    /// Keeps the write end's owner alive for as long as handlers may write to it.
    nonisolated(unsafe) private static var writer: FileDescriptor?

    /// Routes `signals` to the pipe. Signals blocked by whoever started the process
    /// (the mask is inherited across exec) are unblocked in the calling thread,
    /// whose mask threads started later inherit.
    init(routing signals: [Int32]) throws(SystemError) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw SystemError("pipe") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)  // a burst of signals must not block the handler
        reader = FileDescriptor(adopting: fds[0])
        Self.writer = FileDescriptor(adopting: fds[1])
        Self.writeEnd = fds[1]
        var set = sigset_t()
        sigemptyset(&set)
        for number in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                let saved = errno
                var byte = UInt8(truncatingIfNeeded: number)
                _ = Glibc.write(SignalPipe.writeEnd, &byte, 1)
                errno = saved
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = Int32(SA_RESTART)
            sigaction(number, &action, nil)
            sigaddset(&set, number)
        }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// The signals that arrived, waiting for at most `timeout` seconds (nil: no
    /// limit) for the first; empty when the time ran out.
    func next(timeout: Double?) -> [Int32] {
        var buffer = [UInt8](repeating: 0, count: 64)
        let readable = (try? FileDescriptor.waitReadable([reader], timeoutMilliseconds: Self.milliseconds(timeout))) ?? [false]
        guard readable[0] else { return [] }
        let count = buffer.withUnsafeMutableBytes { (try? reader.read(into: $0)) ?? 0 }
        return buffer.prefix(count).map { Int32($0) }
    }

    static func milliseconds(_ seconds: Double?) -> Int32 {
        guard let seconds else { return -1 }
        return Int32(max(0, min(seconds, 3600)) * 1000)
    }
}
