/// What a worker process learns from its process manager: its generation, the
/// pool's size, and where to say it is ready. Taken out of the environment once,
/// so the app's own child processes do not see it.
struct PoolWorker {
    let generation: Int
    let poolSize: Int
    /// The master's pid (its parent when it started).
    let master: Int32
    /// The pool's board (fd 4) and this worker's slot on it.
    let board: (board: PoolBoard, slot: Int)?
    private let ready: FileDescriptor?

    /// Whether a process manager started this process (its settings not yet taken).
    static var isThisProcess: Bool { ProcessEnvironment.contains(ProcessManager.WorkerEnvironment.generation) }

    /// The worker's settings, if a process manager started this process.
    static func takeFromEnvironment() -> PoolWorker? {
        typealias Names = ProcessManager.WorkerEnvironment
        guard let generation = ProcessEnvironment.take(Names.generation).flatMap({ Int($0) }) else { return nil }
        let poolSize = ProcessEnvironment.take(Names.poolSize).flatMap { Int($0) } ?? 1
        let ready = ProcessEnvironment.take(Names.readyFD).flatMap { Int32($0) }.flatMap(ProcessEnvironment.adoptInherited)
        let master = ProcessEnvironment.take(Names.master).flatMap { Int32($0) } ?? ProcessSpawner.parentPID
        return PoolWorker(
            generation: generation, poolSize: poolSize, master: master,
            board: board(ProcessEnvironment.take(Names.board)), ready: ready)
    }

    /// The board named by `CAPACITY:SLOT`, mapped from fd 4.
    private static func board(_ text: String?) -> (board: PoolBoard, slot: Int)? {
        let parts = text?.split(separator: ":").compactMap { Int($0) } ?? []
        guard parts.count == 2, (0..<parts[0]).contains(parts[1]),
            let descriptor = ProcessEnvironment.adoptInherited(PoolBoard.workerFD),
            let board = try? PoolBoard(descriptor: descriptor, capacity: parts[0])
        else { return nil }
        return (board, parts[1])
    }

    /// Tells the manager this worker serves (one byte on the readiness pipe, which
    /// closes when this value goes).
    func signalReady() {
        guard let ready else { return }
        var byte: UInt8 = 1
        _ = withUnsafeBytes(of: &byte) { try? ready.write($0) }
    }
}
