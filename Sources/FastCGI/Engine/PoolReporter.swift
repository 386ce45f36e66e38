/// A pool worker's heartbeat: a thread that, every ``interval`` seconds, writes
/// the time and this worker's figures (its counters, open connections,
/// requests in flight, busy and idle threads) to its slot on the pool's board.
/// The status page of any worker sums the slots into the pool's figures, and
/// the master replaces a worker whose heartbeat stops (a stopped or wedged
/// process) past ``Server/Configuration/workerTimeout``.
///
/// Publishing once a second keeps the request path free of shared-memory
/// writes; a stop publishes once more, so a worker's last requests count.
///
/// Each beat also checks that the master is still this process's parent: a
/// master that was killed (SIGKILL, the OOM killer) can stop nobody, and its
/// workers would serve on, old code and all; ``init(board:slot:master:masterGone:publish:)``'s
/// `masterGone` is called once when it is gone.
final class PoolReporter: Sendable {
    static let interval = 1.0

    private let board: PoolBoard
    private let slot: Int
    private let publish: @Sendable (PoolBoard, Int) -> Void
    private let stopped = Guarded(false)
    private let finished = Guarded(false)
    /// The master (this worker's parent when it was spawned); nil: not watched.
    private let master: Int32?
    private let masterGone: @Sendable (Int32) -> Void

    /// Starts the heartbeat; `publish` writes the figures to the slot;
    /// `masterGone` learns the master's pid once it is no longer the parent.
    init(
        board: PoolBoard, slot: Int, master: Int32? = nil, masterGone: @escaping @Sendable (Int32) -> Void = { _ in },
        publish: @escaping @Sendable (PoolBoard, Int) -> Void
    ) throws {
        self.board = board
        self.slot = slot
        self.publish = publish
        self.master = master
        self.masterGone = masterGone
        beat()
        try OSThread.spawn(stackSize: 128 << 10) { [self] in loop() }
    }

    private func beat() {
        publish(board, slot)
        board[slot, .heartbeat] = MonotonicClock.coarseMilliseconds()
    }

    private func loop() {
        var orphaned = false
        while stopped.wait(until: { $0 }, timeout: Self.interval, { _ in true }) == nil {
            beat()
            if !orphaned, let master, ProcessSpawner.parentPID != master {
                orphaned = true
                masterGone(master)
            }
        }
        beat()
        finished.withLock { $0 = true }
    }

    /// Publishes a last time and ends the thread (waits for it).
    func stop() {
        stopped.withLock { $0 = true }
        _ = finished.wait(until: { $0 }) { _ in }
    }
}
