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
        /// `CAPACITY:SLOT`: the pool board's size (fd 4) and this worker's slot.
        static let board = "SWIFT_FCGI_BOARD"
        /// The master's pid: a worker whose parent is no longer it stops.
        static let master = "SWIFT_FCGI_MASTER"
        /// Never passed on from the master's own environment: these, systemd's
        /// activation (the master consumed it) and its notification socket (the
        /// master alone speaks for the service).
        static let removed: Set<String> = [
            generation, readyFD, poolSize, board, master, "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET",
        ]
    }

    private let server: Server
    /// The listening socket (master thread only): closed as the pool stops, so
    /// a web server is refused at once (each worker closes its own copy as it
    /// drains).
    private let listening: Guarded<FileDescriptor?>
    /// Removes the unix socket file the server made, once `listening` is closed.
    private let listeningClosed: @Sendable () -> Void
    private let size: Int
    private let maxWorkerBytes: Int?
    private let stopWakeup: Wakeup
    private let notify: SystemdNotify?
    /// Who the workers are, for every worker's status page.
    private let board: PoolBoard?
    /// The board slot of each worker (master thread only).
    private let slots = Guarded<[Int32: Int]>([:])
    /// The path workers are started from: the one the master was started as
    /// (or `binary`), never resolved, so a reload after a symlink swap starts
    /// the new release.
    private let executable: Executable?
    /// The generations whose program was logged (master thread only).
    private let announced = Guarded<Set<Int>>([])

    init(
        server: Server, listening: FileDescriptor, size: Int, maxWorkerBytes: Int?,
        whenClosed: @escaping @Sendable () -> Void = {}
    ) throws(SystemError) {
        self.server = server
        self.listening = Guarded(listening)
        listeningClosed = whenClosed
        self.size = size
        self.maxWorkerBytes = maxWorkerBytes
        stopWakeup = try Wakeup()
        notify = SystemdNotify.fromEnvironment()
        // Room for a whole second generation during a reload, and replacements.
        board = try? PoolBoard.create(capacity: 2 * size + 4)
        board?[.startTime] = Int(WallClock.seconds())
        executable = Executable.launchPath(argv0: CommandLine.arguments.first, binary: server.configuration.binary)
    }

    /// Makes ``run()`` stop the pool (any thread).
    func stop() { stopWakeup.signal() }

    /// Runs the pool until it has stopped.
    func run() throws(SystemError) {
        let signals = try SignalPipe(routing: [SIGCHLD, SIGHUP, SIGUSR2, SIGUSR1, SIGTERM, SIGINT, SIGQUIT])
        var pool = WorkerPool(size: size, stopTimeout: server.shutdownSeconds + 5)
        var readiness: [Int32: FileDescriptor] = [:]
        var nextMemoryCheck = MonotonicClock.seconds() + 1
        server.logger.info("process manager \(ProcessSpawner.currentPID): keeping \(size) workers")

        func feed(_ event: WorkerPool.Event) {
            var queue = [event]
            while !queue.isEmpty {
                let next = queue.removeFirst()
                record(next)
                let actions = pool.handle(next, at: MonotonicClock.seconds())
                for action in actions { queue += carryOut(action, readiness: &readiness) }
            }
            publish(pool)
        }

        feed(.start)
        while !pool.isFinished {
            let now = MonotonicClock.seconds()
            var wait = pool.nextDeadline.map { max(0, $0 - now) }
            wait = min(wait ?? 1, max(0, nextMemoryCheck - now))
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
            if MonotonicClock.seconds() >= nextMemoryCheck {
                nextMemoryCheck = MonotonicClock.seconds() + 1
                for pid in pool.workers.keys.sorted() {
                    guard let bytes = ProcessSpawner.residentBytes(of: pid) else { continue }
                    if let board, let slot = slots.withLock({ $0[pid] }) { board[slot, .residentBytes] = bytes }
                    if let limit = maxWorkerBytes, bytes > limit { feed(.tooBig(pid: pid, bytes: bytes)) }
                }
                for (pid, silence) in silentWorkers(of: pool) { feed(.unresponsive(pid: pid, seconds: silence)) }
            }
            if let deadline = pool.nextDeadline, MonotonicClock.seconds() >= deadline { feed(.tick) }
        }
    }

    /// Serving workers whose heartbeat is older than the worker timeout, with
    /// how long (seconds). One still starting is left alone: an app may take
    /// its time before `run()`, and a reload gives up on it after
    /// ``WorkerPool/readyTimeout``.
    private func silentWorkers(of pool: WorkerPool) -> [(Int32, Double)] {
        guard let board, let limit = server.configuration.workerTimeout?.seconds else { return [] }
        let now = MonotonicClock.coarseMilliseconds()
        return pool.workers.compactMap { pid, worker in
            guard worker.ready, !worker.unresponsive, let slot = slots.withLock({ $0[pid] }) else { return nil }
            let heartbeat = board[slot, .heartbeat]
            let silence = Double(now - heartbeat) / 1000
            return heartbeat != 0 && silence > limit ? (pid, silence) : nil
        }
    }

    /// Keeps the board's slots in step with what happened to the workers.
    private func record(_ event: WorkerPool.Event) {
        guard let board else { return }
        switch event {
        case .ready(let pid):
            if let slot = slots.withLock({ $0[pid] }) { board[slot, .ready] = 1 }
        case .exited(let pid, _):
            // Its counts join the pool's retired totals: the pool's counters never go back.
            if let slot = slots.withLock({ $0.removeValue(forKey: pid) }) { board.retire(slot) }
        default: break
        }
    }

    /// The pool's counters, for the workers' status pages.
    private func publish(_ pool: WorkerPool) {
        guard let board else { return }
        board[.generation] = pool.generation
        board[.crashes] = pool.crashes
        board[.recycled] = pool.recycled
        board[.reloads] = pool.reloads
        board[.hung] = pool.hung
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
            guard let executable = executable?.path ?? ProcessSpawner.currentExecutable() else {
                return [.spawnFailed(generation: generation, reason: "cannot read /proc/self/exe")]
            }
            if announced.withLock({ $0.insert(generation).inserted }) {
                let program = Executable(path: executable)
                let target = program.target.map { $0 == executable ? "" : " (now \($0))" } ?? " (missing)"
                server.logger.notice(
                    "generation \(generation) runs \(executable)\(target), build id \(program.buildID ?? "none")")
            }
            var environment = ProcessSpawner.environment(removing: WorkerEnvironment.removed)
            environment += [
                "\(WorkerEnvironment.generation)=\(generation)", "\(WorkerEnvironment.readyFD)=3",
                "\(WorkerEnvironment.poolSize)=\(size)", "\(WorkerEnvironment.master)=\(ProcessSpawner.currentPID)",
            ]
            let slot = board?.freeSlot()
            if let board, let slot { environment.append("\(WorkerEnvironment.board)=\(board.capacity):\(slot)") }
            guard let listening = listening.withLock({ $0 }) else {
                return [.spawnFailed(generation: generation, reason: "the listening socket is closed: the pool stops")]
            }
            do {
                let started = try ProcessSpawner.spawn(
                    executable, arguments: Array(CommandLine.arguments.dropFirst()), environment: environment,
                    listening: listening, board: slot == nil ? nil : board?.descriptor)
                readiness[started.pid] = started.ready
                if let board, let slot {
                    board.clear(slot)
                    board[slot, .generation] = generation
                    board[slot, .startTime] = Int(WallClock.seconds())
                    board[slot, .pid] = Int(started.pid)
                    slots.withLock { $0[started.pid] = slot }
                }
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
            case .stopping:
                notify?.send("STOPPING=1\nSTATUS=stopping")
                closeListening()
            }
        case .finished:
            closeListening()
        }
        return []
    }

    /// Closes the master's copy of the listening socket, once.
    private func closeListening() {
        let closed = listening.withLock { l in
            defer { l = nil }
            return l != nil
        }
        if closed { listeningClosed() }
    }
}
