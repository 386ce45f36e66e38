/// The process manager's logic, pure: which workers run, which to start, stop or
/// kill, and when. Events in (a worker started, became ready, exited; reload;
/// stop; the clock), actions out; ``ProcessManager`` carries them out with
/// `posix_spawn`, signals and `waitpid`. Tested without processes.
///
/// Rules:
/// - `size` workers serve at all times but during a reload (then up to twice as
///   many) and a stop.
/// - A worker that exits with code 0 stopped of its own accord (its `maxRequests`
///   reached): it is replaced at once.
/// - A worker that crashes (a signal, a non-zero code) is replaced; if it died
///   before it was ready or within ``earlyDeath`` seconds of its start, each such
///   death in a row doubles the wait before the next start, from
///   ``firstBackoff`` up to ``maxBackoff``.
/// - A reload starts a full new generation; when every new worker is ready, the
///   old ones are asked to drain (SIGTERM: they finish what they hold and exit).
///   If a new worker dies first, or they are not all ready within
///   ``readyTimeout``, the reload is abandoned and the old generation serves on.
/// - A stop asks every worker to drain and kills those still running after
///   `stopTimeout`.
/// - A serving worker whose heartbeat stopped (``Event/unresponsive(pid:seconds:)``:
///   a stopped or wedged process) is killed and replaced at once, counted as
///   hung, not as a crash.
struct WorkerPool {
    enum Event: Hashable {
        case start
        case spawned(pid: Int32, generation: Int)
        case spawnFailed(generation: Int, reason: String)
        case ready(pid: Int32)
        case exited(pid: Int32, status: ExitStatus)
        case reload
        case stop
        /// A worker's memory passed the limit: replace it.
        case tooBig(pid: Int32, bytes: Int)
        /// A serving worker published no heartbeat for `seconds`: kill it.
        case unresponsive(pid: Int32, seconds: Double)
        /// The clock moved (the executor calls it when ``nextDeadline`` passes).
        case tick
    }

    enum Action: Hashable {
        case spawn(generation: Int)
        /// SIGTERM: drain and exit.
        case drain(pid: Int32)
        /// SIGKILL, after the stop timeout.
        case kill(pid: Int32)
        case log(LogLevel, String)
        /// The service's state changed (for systemd's `Type=notify`).
        case announce(Readiness)
        /// Every worker has exited after a stop.
        case finished
    }

    /// What the pool tells a service manager.
    enum Readiness: Hashable {
        /// The first generation serves, or a reload ended (done or abandoned).
        case ready
        case reloading
        case stopping
    }

    enum LogLevel: Hashable { case info, notice, warning, error }

    struct Worker: Hashable {
        let generation: Int
        let startedAt: Double
        var ready = false
        /// Asked to drain: not replaced when it exits.
        var retiring = false
        /// Killed for a stopped heartbeat: replaced at once when it exits.
        var unresponsive = false
    }

    enum Phase: Hashable {
        case idle
        case serving
        case reloading(generation: Int, deadline: Double)
        case stopping(deadline: Double)
    }

    let size: Int
    let stopTimeout: Double
    static let earlyDeath = 1.0
    static let firstBackoff = 0.1
    static let maxBackoff = 10.0
    static let readyTimeout = 30.0

    private(set) var workers: [Int32: Worker] = [:]
    private(set) var phase = Phase.idle
    private(set) var generation = 1
    /// Starts owed, with the time each is due.
    private(set) var pendingStarts: [(due: Double, generation: Int)] = []
    /// Early deaths in a row (reset when a worker becomes ready).
    private(set) var earlyDeaths = 0
    /// Workers replaced after a crash, and after reaching their request limit.
    private(set) var crashes = 0
    private(set) var recycled = 0
    /// Workers killed because their heartbeat stopped.
    private(set) var hung = 0
    /// Reloads completed (a new generation took over).
    private(set) var reloads = 0
    /// Whether the first generation was all ready once (`.ready` announced).
    private(set) var announcedReady = false

    init(size: Int, stopTimeout: Double) {
        self.size = size
        self.stopTimeout = stopTimeout
    }

    /// When ``handle(_:at:)`` wants a `.tick` next (nil: only on other events).
    var nextDeadline: Double? {
        var deadlines = pendingStarts.map(\.due)
        switch phase {
        case .reloading(_, let deadline), .stopping(let deadline): deadlines.append(deadline)
        case .idle, .serving: break
        }
        return deadlines.min()
    }

    var isFinished: Bool {
        if case .stopping = phase { return workers.isEmpty }
        return false
    }

    mutating func handle(_ event: Event, at now: Double) -> [Action] {
        switch event {
        case .start:
            guard phase == .idle else { return [] }
            phase = .serving
            return Array(repeating: .spawn(generation: generation), count: size)
        case .spawned(let pid, let generation):
            workers[pid] = Worker(generation: generation, startedAt: now)
            if case .stopping = phase { return drain([pid]) }
            return []
        case .spawnFailed(let generation, let reason):
            return [.log(.error, "cannot start a worker: \(reason)")] + replace(generation: generation, early: true, at: now)
        case .ready(let pid):
            return ready(pid, at: now)
        case .exited(let pid, let status):
            return exited(pid, status: status, at: now)
        case .reload:
            return reload(at: now)
        case .stop:
            return stop(at: now)
        case .tooBig(let pid, let bytes):
            guard let worker = workers[pid], !worker.retiring, phase == .serving else { return [] }
            workers[pid]?.retiring = true
            return [
                .log(.notice, "worker \(pid) uses \(bytes >> 20) MiB, over the limit: replacing it"),
                .spawn(generation: worker.generation), .drain(pid: pid),
            ]
        case .unresponsive(let pid, let seconds):
            guard let worker = workers[pid], worker.ready, !worker.unresponsive else { return [] }
            workers[pid]?.unresponsive = true
            hung += 1
            let silence = (seconds * 10).rounded() / 10
            return [
                .log(.error, "worker \(pid) sent no heartbeat for \(silence) s (stopped or wedged): killing it"), .kill(pid: pid),
            ]
        case .tick:
            return tick(at: now)
        }
    }

    private mutating func ready(_ pid: Int32, at now: Double) -> [Action] {
        guard workers[pid] != nil else { return [] }
        workers[pid]?.ready = true
        earlyDeaths = 0
        if !announcedReady, phase == .serving, workers.values.filter(\.ready).count >= size {
            announcedReady = true
            return [.announce(.ready)]
        }
        guard case .reloading(let newGeneration, _) = phase else { return [] }
        let fresh = workers.values.filter { $0.generation == newGeneration && $0.ready && !$0.retiring }
        guard fresh.count >= size else { return [] }
        // The new generation serves: the old one finishes what it holds and exits.
        let old = workers.filter { $0.value.generation != newGeneration && !$0.value.retiring }.map(\.key)
        generation = newGeneration
        phase = .serving
        reloads += 1
        pendingStarts.removeAll { $0.generation != newGeneration }
        return [.log(.notice, "reload: generation \(newGeneration) serves; draining \(old.count) old workers")] + drain(old)
            + [.announce(.ready)]
    }

    private mutating func exited(_ pid: Int32, status: ExitStatus, at now: Double) -> [Action] {
        guard let worker = workers.removeValue(forKey: pid) else { return [] }
        if case .stopping = phase {
            return workers.isEmpty ? [.log(.info, "every worker has stopped"), .finished] : []
        }
        if worker.unresponsive {
            // Counted as hung already; its replacement is not a start-up death.
            return [.log(.notice, "worker \(pid), killed for its silence, is gone: \(status)")]
                + (worker.retiring ? [] : replace(generation: worker.generation, early: false, at: now))
        }
        if worker.retiring {
            return status.isClean ? [] : [.log(.warning, "worker \(pid) exited while draining: \(status)")]
        }
        if case .reloading(let newGeneration, _) = phase, worker.generation == newGeneration, !worker.ready {
            return [.log(.error, "reload abandoned: new worker \(pid) exited before it was ready (\(status))")]
                + abandonReload(newGeneration)
        }
        if status.isClean {
            recycled += 1
            return [
                .log(
                    .info,
                    "worker \(pid) stopped of its own accord (its request limit, or a stop it was sent): starting a fresh one")
            ]
                + replace(generation: worker.generation, early: false, at: now)
        }
        crashes += 1
        let early = !worker.ready || now - worker.startedAt < Self.earlyDeath
        return [.log(.error, "worker \(pid) died: \(status); starting another")]
            + replace(generation: worker.generation, early: early, at: now)
    }

    /// Schedules the start that replaces a worker of `generation`; after an early
    /// death, with backoff.
    private mutating func replace(generation: Int, early: Bool, at now: Double) -> [Action] {
        guard !isRetired(generation) else { return [] }
        guard early else { return [.spawn(generation: generation)] }
        earlyDeaths += 1
        let delay = min(Self.maxBackoff, Self.firstBackoff * Double(1 << min(earlyDeaths - 1, 16)))
        pendingStarts.append((now + delay, generation))
        if earlyDeaths >= 3 {
            return [.log(.warning, "workers keep dying at start-up (\(earlyDeaths) in a row): next start in \(delay) s")]
        }
        return []
    }

    /// A generation being replaced by a reload in progress, or abandoned.
    private func isRetired(_ generation: Int) -> Bool {
        switch phase {
        case .reloading(let newGeneration, _): generation != newGeneration && generation != self.generation
        case .serving: generation != self.generation
        case .idle, .stopping: true
        }
    }

    private mutating func reload(at now: Double) -> [Action] {
        switch phase {
        case .serving:
            let newGeneration = max(generation, workers.values.map(\.generation).max() ?? 0) + 1
            phase = .reloading(generation: newGeneration, deadline: now + Self.readyTimeout)
            return [.announce(.reloading), .log(.notice, "reload: starting generation \(newGeneration) (\(size) workers)")]
                + Array(repeating: .spawn(generation: newGeneration), count: size)
        case .reloading: return [.log(.warning, "reload already in progress: ignored")]
        case .idle, .stopping: return []
        }
    }

    private mutating func abandonReload(_ newGeneration: Int) -> [Action] {
        phase = .serving
        pendingStarts.removeAll { $0.generation == newGeneration }
        return drain(workers.filter { $0.value.generation == newGeneration }.map(\.key)) + [.announce(.ready)]
    }

    private mutating func stop(at now: Double) -> [Action] {
        if case .stopping = phase { return [] }
        phase = .stopping(deadline: now + stopTimeout)
        pendingStarts = []
        if workers.isEmpty { return [.announce(.stopping), .finished] }
        return [.announce(.stopping), .log(.info, "stopping \(workers.count) workers")] + drain(Array(workers.keys))
    }

    private mutating func tick(at now: Double) -> [Action] {
        var actions: [Action] = []
        let due = pendingStarts.filter { $0.due <= now }
        pendingStarts.removeAll { $0.due <= now }
        actions += due.map { .spawn(generation: $0.generation) }
        switch phase {
        case .reloading(let newGeneration, let deadline) where now >= deadline:
            actions.append(.log(.error, "reload abandoned: the new workers were not ready within \(Self.readyTimeout) s"))
            actions += abandonReload(newGeneration)
        case .stopping(let deadline) where now >= deadline:
            phase = .stopping(deadline: .infinity)
            let left = workers.keys.sorted()
            actions.append(.log(.warning, "\(left.count) workers still running after \(stopTimeout) s: killing them"))
            actions += left.map { .kill(pid: $0) }
        default: break
        }
        return actions
    }

    private mutating func drain(_ pids: [Int32]) -> [Action] {
        pids.sorted().map { pid in
            workers[pid]?.retiring = true
            return .drain(pid: pid)
        }
    }
}
