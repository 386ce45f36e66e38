/// What a worker process learns from its process manager: its generation, the
/// pool's size, and where to say it is ready. Taken out of the environment once,
/// so the app's own child processes do not see it.
struct PoolWorker {
    let generation: Int
    let poolSize: Int
    private let ready: FileDescriptor?

    /// Whether a process manager started this process (its settings not yet taken).
    static var isThisProcess: Bool { ProcessEnvironment.contains(ProcessManager.WorkerEnvironment.generation) }

    /// The worker's settings, if a process manager started this process.
    static func takeFromEnvironment() -> PoolWorker? {
        typealias Names = ProcessManager.WorkerEnvironment
        guard let generation = ProcessEnvironment.take(Names.generation).flatMap({ Int($0) }) else { return nil }
        let poolSize = ProcessEnvironment.take(Names.poolSize).flatMap { Int($0) } ?? 1
        let ready = ProcessEnvironment.take(Names.readyFD).flatMap { Int32($0) }.flatMap(ProcessEnvironment.adoptInherited)
        return PoolWorker(generation: generation, poolSize: poolSize, ready: ready)
    }

    /// Tells the manager this worker serves (one byte on the readiness pipe, which
    /// closes when this value goes).
    func signalReady() {
        guard let ready else { return }
        var byte: UInt8 = 1
        _ = withUnsafeBytes(of: &byte) { try? ready.write($0) }
    }
}
