import Synchronization
import FastCGIWire

/// Threading level 2: requests run on threads of their own (reused from a pool),
/// reading input the connection thread queues, writing records straight to the
/// connection (serialized there).
final class SwiftExecutor: RequestExecutor {
    let server: Server
    private let pool: ThreadPool

    init(server: Server) {
        self.server = server
        pool = ThreadPool(keepIdle: server.workers)
    }

    func start(_ request: RequestStart, on connection: Connection) -> any RequestSink {
        let transport = SwiftTransport(start: request, connection: connection, maxBuffered: server.limits.maxBufferedStdin)
        pool.run { [server] in
            server.serve(transport, logger: connection.logger)
            transport.finish()
        }
        return transport
    }

    func shutdown() { pool.shutdown() }

    var workerCounts: (busy: Int, idle: Int) { pool.counts }
}

/// Threads that run jobs, kept for reuse: "one thread per request" is about
/// concurrency, not about creating a thread for each request.
final class ThreadPool: @unchecked Sendable {
    private struct State {
        var jobs: [@Sendable () -> Void] = []
        var idle = 0
        var stopped = false
    }

    private let state = Guarded(State())
    private let keepIdle: Int
    private let busy = Atomic<Int>(0)

    init(keepIdle: Int) { self.keepIdle = keepIdle }

    /// Runs `job` on an idle thread, or on a new one if none is idle.
    func run(_ job: @escaping @Sendable () -> Void) {
        // Idle threads count themselves; a new thread is needed only when more jobs
        // wait than idle threads will take.
        let needThread = state.withLock { s in
            s.jobs.append(job)
            return s.jobs.count > s.idle
        }
        guard needThread else { return }
        do {
            try OSThread.spawn { [self] in loop() }
        } catch {
            // No thread to be had: run it here rather than lose the request.
            let job = state.withLock { $0.jobs.isEmpty ? nil : $0.jobs.removeFirst() }
            job?()
        }
    }

    private func loop() {
        while true {
            if let job = state.withLock({ $0.jobs.isEmpty ? nil : $0.jobs.removeFirst() }) {
                runCounted(job)
                continue
            }
            let parked = state.withLock { s -> Bool in
                guard !s.stopped, s.idle < keepIdle else { return false }
                s.idle += 1
                return true
            }
            guard parked else { return }
            let next = state.wait(until: { !$0.jobs.isEmpty || $0.stopped }) { s -> (@Sendable () -> Void)? in
                s.idle -= 1
                return s.jobs.isEmpty ? nil : s.jobs.removeFirst()
            }
            guard let job = next ?? nil else { return }
            runCounted(job)
        }
    }

    private func runCounted(_ job: () -> Void) {
        busy.add(1, ordering: .relaxed)
        job()
        busy.subtract(1, ordering: .relaxed)
    }

    /// Threads running a job, and threads parked waiting for one.
    var counts: (busy: Int, idle: Int) { (busy.value, state.withLock { $0.idle }) }

    func shutdown() {
        state.withLock { $0.stopped = true }
    }
}
