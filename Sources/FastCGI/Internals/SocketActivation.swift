#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// systemd socket activation (`sd_listen_fds(3)`): listening sockets passed from
/// fd 3 on, announced by `LISTEN_PID` (this process), `LISTEN_FDS` (how many) and
/// optionally `LISTEN_FDNAMES` (their names, colon-separated).
enum SocketActivation {
    /// The passed socket to serve — the one named `name`, else the first — or nil
    /// when this process was not socket-activated. The variables are removed from
    /// the environment so child processes do not inherit them.
    static func listeningSocket(named name: String?) throws(ServerError) -> (fd: Int32, name: String?)? {
        guard let pid = environment("LISTEN_PID").flatMap({ Int32($0) }), pid == getpid(),
            let count = environment("LISTEN_FDS").flatMap({ Int($0) }), count >= 1
        else { return nil }
        let names =
            environment("LISTEN_FDNAMES").map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
            ?? []
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
        for fd in 3..<(3 + Int32(count)) { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var index = 0
        if let name {
            guard let found = names.firstIndex(of: name), found < count else {
                throw ServerError(
                    "socket activation: no socket named \"\(name)\" among the \(count) passed (LISTEN_FDNAMES=\(names.joined(separator: ":")))"
                )
            }
            index = found
        }
        let fd = Int32(3 + index)
        var listening: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) == 0, listening != 0 else {
            throw ServerError("socket activation: fd \(fd) is not a listening socket (use Accept=no in the .socket unit)")
        }
        return (fd, index < names.count ? names[index] : nil)
    }

    private static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}
