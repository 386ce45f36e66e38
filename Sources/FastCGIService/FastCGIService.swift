import FastCGI
import ServiceLifecycle

/// A ``FastCGI/Server`` as a swift-service-lifecycle `Service`, to run in a
/// `ServiceGroup` beside an app's other services (a database pool, a metrics
/// exporter).
///
/// `run()` serves until the group shuts down gracefully (its signals, or
/// `triggerGracefulShutdown()`), then stops the server as `exit()` does —
/// requests in flight finish, up to `shutdownTimeout` — and returns.
///
/// ```swift
/// var configuration = Server.Configuration(address: "unix:/run/app/app.sock")
/// configuration.handleSignals = false  // the group owns the signals
/// let server = Server(
///     factories: [.responder: .async { request in try request.write("hi\n") }], configuration: configuration)
/// let group = ServiceGroup(
///     services: [FastCGIService(server)], gracefulShutdownSignals: [.sigterm, .sigint],
///     logger: server.logger)
/// try await group.run()
/// ```
///
/// Create the server with `configuration.handleSignals = false`: the group
/// owns the signals.
public struct FastCGIService: Service {
    /// The server this service runs.
    public let server: Server

    /// A service running `server`.
    public init(_ server: Server) { self.server = server }

    /// Serves until a graceful shutdown (or the task's cancellation), then drains.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.runUntilStopped()
        } onGracefulShutdown: {
            server.exit()
        }
    }
}
