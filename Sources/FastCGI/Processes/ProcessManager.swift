import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The master of `Server(processes: N)`: owns the listening socket, keeps N worker
/// processes of this same binary serving it as their fd 0, and runs no handler.
/// ``WorkerPool`` decides; this carries its actions out (posix_spawn, signals,
/// waitpid) and feeds it what happened.
///
/// Signals: SIGHUP and SIGUSR2 reload (a new generation from the binary on disk,
/// then the old one drains); SIGTERM, SIGINT and SIGQUIT stop gracefully;
/// SIGUSR1, PHP-FPM's "reopen the logs", only logs a notice: our logs go to
/// stderr, which the supervisor owns. ``Server/exit()`` stops the pool too.
final class ProcessManager: Sendable {
    /// What a worker process is told through its environment.
    enum WorkerEnvironment {
        /// The worker's generation; its presence makes ``Server/run()`` serve fd 0.
        static let generation = "SWIFT_FCGI_WORKER"
        /// The descriptor to write one byte to once serving (then closed).
        static let readyFD = "SWIFT_FCGI_READY_FD"
        /// How many workers the pool keeps (for `FCGI_GET_VALUES`).
        static let poolSize = "SWIFT_FCGI_POOL_SIZE"
        /// What the master consumed, never passed on: systemd's activation.
        /// (and systemd's notification socket: the master alone speaks for the service).
        static let removed: Set<String> = [
            generation, readyFD, poolSize, "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET",
        ]
    }

    private let server: Server
    private let listening: FileDescriptor
    private let size: Int
    private let maxWorkerBytes: Int?
    private let stopWakeup: Wakeup
    private let notify: SystemdNotify?

    init(server: Server, listening: FileDescriptor, size: Int, maxWorkerBytes: Int?) throws(SystemError) {
        self.server = server
        self.listening = listening
        self.size = size
        self.maxWorkerBytes = maxWorkerBytes
        stopWakeup = try Wakeup()
        notify = SystemdNotify.fromEnvironment()
    }

    /// Makes ``run()`` stop the pool (any thread).
    func stop() { stopWakeup.signal() }

    /// Runs the pool until it has stopped.
    func run() throws(SystemError) {
        let signals = try SignalPipe(routing: [SIGCHLD, SIGHUP, SIGUSR2, SIGUSR1, SIGTERM, SIGINT, SIGQUIT])
        var pool = WorkerPool(size: size, stopTimeout: server.shutdownTimeout + 5)
        var readiness: [Int32: FileDescriptor] = [:]
        var nextMemoryCheck = MonotonicClock.seconds() + 1
        server.logger.info("process manager \(ProcessSpawner.currentPID): keeping \(size) workers")

        func feed(_ event: WorkerPool.Event) {
            var queue = [event]
            while !queue.isEmpty {
                let actions = pool.handle(queue.removeFirst(), at: MonotonicClock.seconds())
                for action in actions { queue += carryOut(action, readiness: &readiness) }
            }
        }

        feed(.start)
        while !pool.isFinished {
            let now = MonotonicClock.seconds()
            var wait = pool.nextDeadline.map { max(0, $0 - now) }
            if maxWorkerBytes != nil { wait = min(wait ?? 1, max(0, nextMemoryCheck - now)) }
            let pids = Array(readiness.keys)
            let watched: [FileDescriptor?] = [signals.reader, stopWakeup.descriptor] + pids.map { readiness[$0] }
            let ready = (try? FileDescriptor.waitReadable(watched, timeoutMilliseconds: SignalPipe.milliseconds(wait))) ?? []
            if ready.first == true {
                for number in signals.next(timeout: 0) { handle(signal: number, feed: feed) }
            }
            if ready.count > 1 && ready[1] {
                stopWakeup.clear()
                feed(.stop)
            }
            for (index, pid) in pids.enumerated() where ready.count > index + 2 && ready[index + 2] {
                var byte: UInt8 = 0
                let count = withUnsafeMutableBytes(of: &byte) { (try? readiness[pid]?.read(into: $0)) ?? 0 }
                readiness[pid] = nil  // one byte, or the end of file of a worker that died first
                if count == 1 { feed(.ready(pid: pid)) }
            }
            if let limit = maxWorkerBytes, MonotonicClock.seconds() >= nextMemoryCheck {
                nextMemoryCheck = MonotonicClock.seconds() + 1
                for pid in pool.workers.keys.sorted() {
                    if let bytes = ProcessSpawner.residentBytes(of: pid), bytes > limit { feed(.tooBig(pid: pid, bytes: bytes)) }
                }
            }
            if let deadline = pool.nextDeadline, MonotonicClock.seconds() >= deadline { feed(.tick) }
        }
    }

    private func handle(signal number: Int32, feed: (WorkerPool.Event) -> Void) {
        switch number {
        case SIGCHLD:
            for (pid, status) in ProcessSpawner.reap() { feed(.exited(pid: pid, status: status)) }
        case SIGHUP, SIGUSR2:
            server.logger.notice("signal \(number): reloading")
            feed(.reload)
        case SIGUSR1:
            server.logger.notice("SIGUSR1: no log file to reopen (logs go to stderr); ignored")
        default:
            server.logger.info("signal \(number): stopping the workers")
            feed(.stop)
        }
    }

    /// Carries out one action; returns the events it caused (a start's result).
    private func carryOut(_ action: WorkerPool.Action, readiness: inout [Int32: FileDescriptor]) -> [WorkerPool.Event] {
        switch action {
        case .spawn(let generation):
            guard let executable = ProcessSpawner.currentExecutable() else {
                return [.spawnFailed(generation: generation, reason: "cannot read /proc/self/exe")]
            }
            var environment = ProcessSpawner.environment(removing: WorkerEnvironment.removed)
            environment += [
                "\(WorkerEnvironment.generation)=\(generation)", "\(WorkerEnvironment.readyFD)=3",
                "\(WorkerEnvironment.poolSize)=\(size)",
            ]
            do {
                let started = try ProcessSpawner.spawn(
                    executable, arguments: Array(CommandLine.arguments.dropFirst()), environment: environment,
                    listening: listening)
                readiness[started.pid] = started.ready
                server.logger.info("started worker \(started.pid) (generation \(generation))")
                return [.spawned(pid: started.pid, generation: generation)]
            } catch {
                return [.spawnFailed(generation: generation, reason: "\(error)")]
            }
        case .drain(let pid):
            ProcessSpawner.send(SIGTERM, to: pid)
        case .kill(let pid):
            ProcessSpawner.send(SIGKILL, to: pid)
        case .log(let level, let message):
            switch level {
            case .info: server.logger.info("\(message)")
            case .notice: server.logger.notice("\(message)")
            case .warning: server.logger.warning("\(message)")
            case .error: server.logger.error("\(message)")
            }
        case .announce(let readiness):
            switch readiness {
            case .ready: notify?.send("READY=1\nSTATUS=\(size) workers serving")
            case .reloading: notify?.send("RELOADING=1\n\(SystemdNotify.monotonicField)\nSTATUS=reloading")
            case .stopping: notify?.send("STOPPING=1\nSTATUS=stopping")
            }
        case .finished:
            break
        }
        return []
    }
}
