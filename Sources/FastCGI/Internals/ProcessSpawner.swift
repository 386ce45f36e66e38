#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// How a child process ended (from `waitpid`).
enum ExitStatus: Hashable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// Exit code 0: the worker stopped of its own accord (its `maxRequests`
    /// reached, or a stop it was asked for).
    var isClean: Bool { self == .exited(0) }

    var description: String {
        switch self {
        case .exited(let code): "exit code \(code)"
        case .signaled(let number): "signal \(number)\(Self.names[number].map { " (\($0))" } ?? "")"
        }
    }

    private static let names: [Int32: String] = [
        SIGKILL: "SIGKILL", SIGTERM: "SIGTERM", SIGSEGV: "SIGSEGV", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
        SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGINT: "SIGINT",
    ]
}

/// Starts worker processes with `posix_spawn` (never `fork`: the master may have
/// threads, and a forked copy of a threaded process may only call
/// async-signal-safe functions), reaps them and signals them.
enum ProcessSpawner {
    /// A started child: its process id and the read end of its readiness pipe
    /// (one byte when it serves; end of file if it dies first).
    struct Started {
        let pid: Int32
        let ready: FileDescriptor
    }

    /// Starts `executable` with `arguments` and `environment` (`NAME=VALUE`),
    /// `listening` as its fd 0, the write end of a fresh readiness pipe as fd 3 and
    /// `board` as fd 4. Signal mask and dispositions start clean.
    static func spawn(
        _ executable: String, arguments: [String], environment: [String], listening: FileDescriptor?,
        board: FileDescriptor?
    ) throws(SystemError) -> Started {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw SystemError("pipe") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let ready = FileDescriptor(adopting: fds[0])
        let childEnd = FileDescriptor(adopting: fds[1])  // closed here when spawn returns

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // In order: the listening socket to 0 first (it may be fd 3, systemd's),
        // then the readiness pipe to 3. dup2 clears close-on-exec on the copy.
        let listenRaw = listening?.raw ?? 0
        if listenRaw != 0 { posix_spawn_file_actions_adddup2(&actions, listenRaw, 0) }
        posix_spawn_file_actions_adddup2(&actions, childEnd.raw, 3)
        // The board was made above fd 10 (PoolBoard.create): neither copy above touched it.
        if let board { posix_spawn_file_actions_adddup2(&actions, board.raw, PoolBoard.workerFD) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGPIPE, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var pid: pid_t = 0
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv + envp { free(pointer) }
        }
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw SystemError("posix_spawn \(executable)", code: rc) }
        return Started(pid: pid, ready: ready)
    }

    /// Every child that has ended since the last call, without waiting.
    static func reap() -> [(pid: Int32, status: ExitStatus)] {
        var ended: [(pid: Int32, status: ExitStatus)] = []
        while true {
            var status: Int32 = 0
            // 0: none has ended; ECHILD: there are none.
            let pid = (try? SystemCall.retrying("waitpid") { Int(waitpid(-1, &status, WNOHANG)) }) ?? 0
            guard pid > 0 else { return ended }
            // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import (macros).
            let signal = status & 0x7f
            ended.append((Int32(pid), signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)))
        }
    }

    /// Sends `signal` to process `pid`.
    static func send(_ signal: Int32, to pid: Int32) {
        _ = kill(pid, signal)
    }

    /// The resident set size of `pid` in bytes (`VmRSS` of /proc/PID/status), nil
    /// if it cannot be read.
    static func residentBytes(of pid: Int32) -> Int? {
        guard let file = fopen("/proc/\(pid)/status", "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard text.hasPrefix("VmRSS:") else { continue }
            let digits = text.dropFirst(6).filter(\.isNumber)
            return Int(digits).map { $0 * 1024 }
        }
        return nil
    }

    /// The path of the running executable (`/proc/self/exe`), so a worker is
    /// started from the file on disk at that path: a new build put there is what
    /// a reload starts.
    static func currentExecutable() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        let path = String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // The file was replaced since we started: the kernel appends " (deleted)".
        return path.hasSuffix(" (deleted)") ? String(path.dropLast(10)) : path
    }

    /// This process's environment as `NAME=VALUE` strings, without `removing`.
    static func environment(removing names: Set<String>) -> [String] {
        StandardStreams.environment().compactMap { pair in
            let name = String(decoding: pair.name, as: UTF8.self)
            guard !names.contains(name) else { return nil }
            return name + "=" + String(decoding: pair.value, as: UTF8.self)
        }
    }

    /// Process id of this process.
    static var currentPID: Int32 { getpid() }

    /// The parent process's id (1, or a subreaper's, once the parent is gone).
    static var parentPID: Int32 { getppid() }
}
