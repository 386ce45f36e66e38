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
