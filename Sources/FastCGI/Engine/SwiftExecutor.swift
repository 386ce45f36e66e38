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
            server.serve(transport)
            transport.finish()
        }
        return transport
    }

    func shutdown() { pool.shutdown() }
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

    init(keepIdle: Int) { self.keepIdle = keepIdle }

    /// Runs `job` on an idle thread, or on a new one if none is idle.
    func run(_ job: @escaping @Sendable () -> Void) {
        let needThread = state.withLock { s in
            s.jobs.append(job)
            if s.idle > 0 {
                s.idle -= 1
                return false
            }
            return true
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
            let job = state.withLock { $0.jobs.isEmpty ? nil : $0.jobs.removeFirst() }
            if let job {
                job()
                continue
            }
            // Park as idle, or leave if enough threads are parked already.
            let keep = state.withLock { s -> Bool in
                guard !s.stopped, s.idle < keepIdle, s.jobs.isEmpty else { return !s.jobs.isEmpty }
                s.idle += 1
                return true
            }
            guard keep else { return }
            let next = state.wait(until: { !$0.jobs.isEmpty || $0.stopped }) { s -> (@Sendable () -> Void)? in
                s.jobs.isEmpty ? nil : s.jobs.removeFirst()
            }
            guard let job = next ?? nil else { return }
            job()
        }
    }

    func shutdown() {
        state.withLock { $0.stopped = true }
    }
}
