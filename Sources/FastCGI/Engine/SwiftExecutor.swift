import FastCGIWire
import Synchronization

/// The Swift engine's executor: threading level 2, and every level when a
/// handler is async.
///
/// A blocking handler runs on a thread: a request whose input is complete when it
/// starts runs on the connection's serving thread, watched by the poller as at
/// levels 0/1 (no hand-off) — at once when alone on its connection (the usual
/// case behind nginx and Apache), else in turn with the other multiplexed
/// requests of its batch (``Connection/runHere(_:orOn:)``; the poller hands the
/// queued ones to the pool if the thread is held up); requests whose input is
/// still arriving run on threads from a pool. An async handler runs as a task on
/// Swift concurrency's global executor: while it awaits it holds no thread, so
/// `workers` does not bound it: at level 0 one runs at a time, at levels 1 and 2
/// as many as come, unless the user set ``Server/Configuration/asyncHandlerLimit``
/// (``AsyncSlots``).
final class SwiftExecutor: RequestExecutor {
    let server: Server
    private let pool: ThreadPool
    /// Handlers running, on a pool thread, on their connection's or as tasks.
    private let running = Atomic<Int>(0)
    /// The bound on async handlers: 1 at level 0, else the user's, if any.
    private let slots: AsyncSlots?

    init(server: Server) {
        self.server = server
        pool = ThreadPool(keepIdle: server.workers)
        let limit = server.threadingLevel == .single ? 1 : server.asyncHandlerLimit
        slots = limit.map { AsyncSlots(limit: $0) }
        if let limit, server.hasAsyncHandlers {
            server.logger.info(
                "async handlers: at most \(limit) at once\(server.threadingLevel == .single ? " (threading level 0)" : "")")
        }
    }

    /// A request whose input is complete may run on its connection's serving
    /// thread (``Monitoring/allowsInlineHandlers``).
    func start(_ request: RequestStart, on connection: Connection) -> any RequestSink {
        let isAsync = server.handler(for: request.role)?.isAsync ?? false
        return SwiftTransport(
            start: request, connection: connection, limits: server.limits,
            mayRunInline: server.monitoring.allowsInlineHandlers && !isAsync,
            launch: { [server, pool, slots, self] transport, here in
                self.running.add(1, ordering: .relaxed)
                guard !isAsync else {
                    let task = Task {
                        await slots?.enter()
                        await server.serve(transport, connection: connection.number)
                        slots?.leave()
                        transport.finish()
                        self.running.subtract(1, ordering: .relaxed)
                    }
                    transport.onEarlyEnd { task.cancel() }
                    return
                }
                let run: @Sendable () -> Void = {
                    server.serve(transport, connection: connection.number)
                    transport.finish()
                    self.running.subtract(1, ordering: .relaxed)
                }
                if here { connection.runHere(run, orOn: pool) } else { pool.run(run) }
            })
    }

    func shutdown() { pool.shutdown() }

    /// A blocking handler's body is gathered before it starts, as at levels 0
    /// and 1: its thread never waits on the network, and a request complete
    /// when it starts runs on its connection's serving thread, with no hand-off
    /// per chunk. An async handler streams its body: it awaits it holding no
    /// thread.
    func gathersBody(for role: Role) -> Bool { !(server.handler(for: role)?.isAsync ?? false) }

    var workerCounts: (busy: Int, idle: Int) { (running.load(ordering: .relaxed), pool.counts.idle) }
}
