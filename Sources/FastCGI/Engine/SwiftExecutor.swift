import FastCGIWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

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
///
/// Every job starts at once: on a parked thread if there is one (woken alone, on
/// its own condition variable — no thundering herd), else on a new thread. Up to
/// `keepIdle` threads stay parked for the next jobs; the others exit.
final class ThreadPool: @unchecked Sendable {
    /// One parked thread: its condition and the job handed to it.
    private final class Parked {
        let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        var job: (@Sendable () -> Void)?
        init() { pthread_cond_init(condition, nil) }
        deinit {
            pthread_cond_destroy(condition)
            condition.deallocate()
        }
    }

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var parked: [Parked] = []  // guarded by mutex
    private var stopped = false  // guarded by mutex
    private let keepIdle: Int
    private let busy = Atomic<Int>(0)
    private let idleCount = Atomic<Int>(0)

    init(keepIdle: Int) {
        self.keepIdle = keepIdle
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `job` on a parked thread, or on a new one if none is parked.
    func run(_ job: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(mutex)
        if let thread = parked.popLast() {
            idleCount.subtract(1, ordering: .relaxed)
            thread.job = job
            pthread_cond_signal(thread.condition)
            pthread_mutex_unlock(mutex)
            return
        }
        pthread_mutex_unlock(mutex)
        do {
            try OSThread.spawn { [self] in loop(first: job) }
        } catch {
            // No thread to be had: run it here rather than lose the request.
            runCounted(job)
        }
    }

    private func loop(first: @escaping @Sendable () -> Void) {
        var job: (@Sendable () -> Void)? = first
        let me = Parked()
        while let current = job {
            runCounted(current)
            job = nil
            pthread_mutex_lock(mutex)
            guard !stopped, parked.count < keepIdle else {
                pthread_mutex_unlock(mutex)
                return
            }
            parked.append(me)
            idleCount.add(1, ordering: .relaxed)
            while me.job == nil && !stopped { pthread_cond_wait(me.condition, mutex) }
            job = me.job
            me.job = nil
            if job == nil {
                // Stopped while parked.
                parked.removeAll { $0 === me }
                idleCount.subtract(1, ordering: .relaxed)
            }
            pthread_mutex_unlock(mutex)
        }
    }

    private func runCounted(_ job: () -> Void) {
        busy.add(1, ordering: .relaxed)
        job()
        busy.subtract(1, ordering: .relaxed)
    }

    /// Threads running a job, and threads parked waiting for one.
    var counts: (busy: Int, idle: Int) { (busy.value, idleCount.value) }

    /// Wakes the parked threads, which then exit.
    func shutdown() {
        pthread_mutex_lock(mutex)
        stopped = true
        for thread in parked { pthread_cond_signal(thread.condition) }
        pthread_mutex_unlock(mutex)
    }
}
