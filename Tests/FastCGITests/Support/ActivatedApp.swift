import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An example app started as systemd starts a socket-activated service: the
/// listening sockets are created first (here, by the test) and passed from fd 3
/// on, with `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID` set to the service's
/// own pid (`sh` exports `$$`, then `exec`s the app, which keeps the pid).
final class ActivatedApp: @unchecked Sendable {
    let pid: pid_t
    /// `127.0.0.1:port` of each passed socket, in fd order.
    let addresses: [String]
    let logURL: URL

    /// - Parameters:
    ///   - names: one name per socket (`LISTEN_FDNAMES`).
    ///   - listenPID: override `LISTEN_PID` (nil: the app's own pid, as systemd sets it).
    init(_ name: String, names: [String], arguments: [String] = [], listenPID: String? = nil) throws {
        var fds: [Int32] = []
        var addresses: [String] = []
        for _ in names {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                    bind(fd, pointer, length) == 0 && Glibc.listen(fd, 64) == 0 && getsockname(fd, pointer, &length) == 0
                }
            }
            guard bound else { throw TestFailure("cannot create a listening socket: \(String(cString: strerror(errno)))") }
            fds.append(fd)
            addresses.append("127.0.0.1:\(UInt16(bigEndian: addr.sin_port))")
        }
        defer { for fd in fds { close(fd) } }
        self.addresses = addresses

        let directory = try TempDirectory.make()
        logURL = directory.appendingPathComponent("app.log")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logURL.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Move the sockets above the target range first, then into 3, 4, ...
        for (index, fd) in fds.enumerated() { posix_spawn_file_actions_adddup2(&actions, fd, Int32(100 + index)) }
        for index in fds.indices { posix_spawn_file_actions_adddup2(&actions, Int32(100 + index), Int32(3 + index)) }

        let pidExpression = listenPID ?? "$$"
        let script =
            "LISTEN_PID=\(pidExpression) LISTEN_FDS=\(names.count) LISTEN_FDNAMES=\(names.joined(separator: ":")) exec \"$0\" \"$@\""
        let argv = ["/bin/sh", "-c", script, Paths.app(name)] + arguments
        var environment = ProcessInfo.processInfo.environment
        for key in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] { environment[key] = nil }
        let envp = environment.map { "\($0.key)=\($0.value)" }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))

        var pid: pid_t = 0
        let rc = withCStrings(argv) { cArgv in
            withCStrings(envp) { cEnvp in posix_spawn(&pid, "/bin/sh", &actions, &attributes, cArgv, cEnvp) }
        }
        guard rc == 0 else { throw TestFailure("posix_spawn failed: \(String(cString: strerror(rc)))") }
        self.pid = pid
    }

    deinit { stop() }

    var isRunning: Bool { kill(pid, 0) == 0 && exitStatus == nil }

    private var reaped: Int32?

    /// The exit status once the app has exited (reaps it), else nil.
    var exitStatus: Int32? {
        if let reaped { return reaped }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        reaped = (status >> 8) & 0xFF
        return reaped
    }

    /// Waits for the app to exit; its status, or nil after `timeout` seconds.
    func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let status = exitStatus { return status }
            usleep(10_000)
        }
        return nil
    }

    /// SIGTERM, then SIGKILL after 3 s.
    func stop() {
        guard exitStatus == nil else { return }
        kill(pid, SIGTERM)
        if waitForExit(timeout: 3) == nil {
            kill(pid, SIGKILL)
            _ = waitForExit(timeout: 3)
        }
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }
}

/// Runs `body` with a NULL-terminated C array of the strings.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
}
