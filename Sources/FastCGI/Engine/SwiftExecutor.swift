import FastCGIWire
import Synchronization

/// Threading level 2: each request runs on a thread of its own, reading input the
/// connection queues and writing records straight to the connection (serialized
/// there). A request whose input is complete when it starts, alone on its
/// connection (the usual case behind nginx and Apache), runs on the connection's
/// serving thread, watched by the poller as at levels 0/1: no hand-off. Others
/// (multiplexed, or input still arriving) run on threads from a pool.
final class SwiftExecutor: RequestExecutor {
    let server: Server
    private let pool: ThreadPool
    /// Handlers running, on a pool thread or on their connection's.
    private let running = Atomic<Int>(0)

    init(server: Server) {
        self.server = server
        pool = ThreadPool(keepIdle: server.workers)
    }

    /// A request whose input is complete may run on its connection's serving
    /// thread (``Monitoring/allowsInlineHandlers``).
    func start(_ request: RequestStart, on connection: Connection) -> any RequestSink {
        SwiftTransport(
            start: request, connection: connection, maxBuffered: server.limits.maxBufferedStdin,
            mayRunInline: server.monitoring.allowsInlineHandlers,
            launch: { [server, pool, self] transport, here in
                let run: @Sendable () -> Void = {
                    self.running.add(1, ordering: .relaxed)
                    server.serve(transport, logger: connection.logger)
                    transport.finish()
                    self.running.subtract(1, ordering: .relaxed)
                }
                if here { connection.runWatched(run) } else { pool.run(run) }
            })
    }

    func shutdown() { pool.shutdown() }

    var workerCounts: (busy: Int, idle: Int) { (running.load(ordering: .relaxed), pool.counts.idle) }
}
