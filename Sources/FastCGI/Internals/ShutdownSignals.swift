// SIGTERM, SIGINT and SIGUSR1 (libfcgi's and Apache mod_fastcgi's "finish and
// exit") stop the server the same way `Server.exit()` does. The handler only
// writes a byte to a pipe; a watcher thread turns it into the call, so nothing
// unsafe runs in signal context. SA_RESTART keeps other threads' reads and writes
// from failing with EINTR.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

enum ShutdownSignals {
    /// The write end of the pipe, read by the handler (a plain global: signal
    /// handlers cannot capture context).
    nonisolated(unsafe) private static var pipeWrite: Int32 = -1
    private static let watched: [Int32] = [SIGTERM, SIGINT, SIGUSR1]

    /// Routes the signals to `onSignal` (called on a watcher thread, once per signal).
    static func install(_ onSignal: @escaping @Sendable (Int32) -> Void) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        pipeWrite = fds[1]
        let readFD = fds[0]
        for number in watched {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                var byte = UInt8(truncatingIfNeeded: number)
                _ = Glibc.write(ShutdownSignals.pipeWrite, &byte, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = Int32(SA_RESTART)
            sigaction(number, &action, nil)
        }
        // A parent may have started us with these signals blocked (the mask is
        // inherited across exec); unblock them in this thread, whose mask the
        // workers started later inherit.
        var set = sigset_t()
        sigemptyset(&set)
        for number in watched { sigaddset(&set, number) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        _ = try? OSThread.spawn(stackSize: 64 << 10) {
            var byte: UInt8 = 0
            while true {
                let n = Glibc.read(readFD, &byte, 1)
                if n == 1 { onSignal(Int32(byte)) } else if n < 0 && errno == EINTR { continue } else { return }
            }
        }
    }
}
