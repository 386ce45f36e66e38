#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// SIGTERM, SIGINT and SIGUSR1 (libfcgi's and Apache mod_fastcgi's "finish and
// exit") stop the server the same way `Server.exit()` does. They arrive on a
// `SignalPipe`; a watcher thread turns each into the call.

enum ShutdownSignals {
    private static let watched: [Int32] = [SIGTERM, SIGINT, SIGUSR1]

    /// Routes the signals to `onSignal` (called on a watcher thread, once per signal).
    static func install(_ onSignal: @escaping @Sendable (Int32) -> Void) {
        guard let signals = try? SignalPipe(routing: watched) else { return }
        _ = try? OSThread.spawn(stackSize: 64 << 10) {
            while true {
                for number in signals.next(timeout: nil) { onSignal(number) }
            }
        }
    }
}
