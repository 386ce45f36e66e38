/// Runs an async operation to its end on the calling thread, which becomes the
/// operation's task executor until then.
///
/// Blocking code that needs an async result (CGI mode, the blocking
/// `Server.respond(to:)`) must not park its thread while the task it waits for
/// runs on Swift concurrency's cooperative pool: when the caller is itself one
/// of the pool's threads (a non-async test under Swift Testing, with as few
/// threads as cores), a few such callers take every thread and the task never
/// runs. Here the waiting thread runs the task's jobs itself, so the wait needs
/// no other thread. Code the task hands to an actor (the main actor, a
/// framework's own) still runs there, and comes back here.
final class CallerThreadExecutor: TaskExecutor, @unchecked Sendable {
    private struct Queue {
        var jobs: [UnownedJob] = []
        var done = false
    }

    private let queue = Guarded(Queue())

    private init() {}

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.withLock { $0.jobs.append(job) }
    }

    /// Runs `operation` in a task whose jobs this thread runs, and returns when
    /// it has finished.
    static func run(_ operation: sending @escaping () async -> Void) {
        let executor = CallerThreadExecutor()
        Task(executorPreference: executor) {
            await operation()
            executor.queue.withLock { $0.done = true }
        }
        executor.drain()
    }

    /// Runs jobs as they come until the task is done.
    private func drain() {
        while true {
            let (jobs, done) = queue.wait(until: { !$0.jobs.isEmpty || $0.done }) { queue in
                defer { queue.jobs.removeAll(keepingCapacity: true) }
                return (queue.jobs, queue.done)
            }!
            for job in jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
            if done && jobs.isEmpty { return }
        }
    }
}
