import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Threads that run jobs, kept for reuse: "one thread per request" is about
/// concurrency, not about creating a thread for each request.
///
/// A job starts on a parked thread if there is one (woken alone, on its own
/// condition variable — no thundering herd), else on a new thread — unless
/// `maxThreads` run already: then an ordinary job waits its turn (first come,
/// first served) and only an urgent one gets a thread of its own, so a burst
/// of jobs cannot grow the process by a thread each. Up to `keepIdle` threads
/// stay parked for the next jobs; the others exit.
final class ThreadPool: @unchecked Sendable {
    /// One parked thread: its condition and the job handed to it.
    private final class Parked: @unchecked Sendable {  // its job is guarded by the pool's mutex
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
    /// Ordinary jobs waiting for a thread, and where the first one is.
    private var waiting: [(@Sendable () -> Void)?] = []  // guarded by mutex
    private var waitingHead = 0  // guarded by mutex
    /// Threads alive (running a job or parked).
    private var threads = 0  // guarded by mutex
    private let maxThreads: Int
    private let keepIdle: Int
    private let stackSize: Int
    private let busy = Atomic<Int>(0)
    private let idleCount = Atomic<Int>(0)

    /// Keeps up to `keepIdle` threads parked; each thread gets `stackSize` bytes of stack.
    init(keepIdle: Int, maxThreads: Int = .max, stackSize: Int = 512 << 10) {
        self.keepIdle = keepIdle
        self.maxThreads = maxThreads
        self.stackSize = stackSize
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `job` on a parked thread, or on a new one if none is parked; past
    /// `maxThreads`, once a thread is free — at once all the same if `urgent`
    /// (a job that others may be waiting on).
    func run(urgent: Bool = false, _ job: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(mutex)
        if let thread = parked.popLast() {
            idleCount.subtract(1, ordering: .relaxed)
            thread.job = job
            // Signalled after the unlock: woken under the lock, the thread
            // would wake only to wait for the mutex (two more futex calls).
            pthread_mutex_unlock(mutex)
            pthread_cond_signal(thread.condition)
            return
        }
        if !urgent && threads >= maxThreads {
            waiting.append(job)
            pthread_mutex_unlock(mutex)
            return
        }
        threads += 1
        pthread_mutex_unlock(mutex)
        do {
            // The job travels in the thread's slot, not in the thread's closure: a
            // closure lives as long as its thread, and with it everything the first
            // job captured (a connection, and so its socket, would never be let go).
            let slot = Parked()
            slot.job = job
            try OSThread.spawn(stackSize: stackSize) { [self] in loop(slot) }
        } catch {
            // No thread to be had: run it here rather than lose the request.
            pthread_mutex_lock(mutex)
            threads -= 1
            pthread_mutex_unlock(mutex)
            var slot: (@Sendable () -> Void)? = job
            runCounted(&slot)
        }
    }

    /// Runs `job` on a parked thread, or a new one within `maxThreads`; false
    /// (and nothing runs) when every thread allowed is busy.
    func runIfFree(_ job: @escaping @Sendable () -> Void) -> Bool {
        pthread_mutex_lock(mutex)
        let free = !parked.isEmpty || threads < maxThreads
        pthread_mutex_unlock(mutex)
        guard free else { return false }
        // Should another job take the room meanwhile, this one waits its turn.
        run(job)
        return true
    }

    /// The first waiting job, if any (the mutex held).
    private func nextWaiting() -> (@Sendable () -> Void)? {
        guard waitingHead < waiting.count else { return nil }
        let job = waiting[waitingHead]
        waiting[waitingHead] = nil
        waitingHead += 1
        if waitingHead == waiting.count {
            waiting.removeAll(keepingCapacity: waiting.count <= 1024)
            waitingHead = 0
        }
        return job
    }

    private func loop(_ me: Parked) {
        pthread_mutex_lock(mutex)
        var job = me.job
        me.job = nil
        pthread_mutex_unlock(mutex)
        while job != nil {
            // The job (and what it captured) is released before the thread parks.
            runCounted(&job)
            pthread_mutex_lock(mutex)
            // Within the bound, the next waiting job; a thread an urgent job
            // added past it goes (the bound counts every thread alive).
            if !stopped, threads <= maxThreads, let next = nextWaiting() {
                pthread_mutex_unlock(mutex)
                job = next
                continue
            }
            guard !stopped, threads <= maxThreads, parked.count < keepIdle else {
                threads -= 1
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
                threads -= 1
            }
            pthread_mutex_unlock(mutex)
        }
    }

    /// Runs the job in `slot` and empties the slot; the closure is let go when
    /// this returns.
    private func runCounted(_ slot: inout (@Sendable () -> Void)?) {
        guard let job = slot else { return }
        slot = nil
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
