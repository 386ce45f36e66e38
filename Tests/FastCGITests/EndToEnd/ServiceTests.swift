import FastCGI
import FastCGIClient
import FastCGIService
import Foundation
import Logging
import ServiceLifecycle
import Testing

/// `FastCGIService`: a Server in a swift-service-lifecycle ServiceGroup, as
/// `async-hello` runs it (in its own process: the group owns its signals).
@Suite("Service lifecycle", .timeLimit(.minutes(2)))
struct ServiceTests {
    @Test(
        "async-hello in a ServiceGroup: a signal lets the request in flight finish, then the process exits 0",
        arguments: [SIGTERM, SIGINT, SIGUSR1])
    func gracefulShutdown(signal: Int32) throws {
        let app = try RunningApp(
            "async-hello", unix: true, arguments: ["--threading-level", "2", "--status-path", "/status"])
        let connection = try FastCGIConnection(to: app.address, timeout: .seconds(10))
        try connection.write(FastCGIRequest.http(uri: "/?delay_ms=700&name=drain").encoded)
        // Signal once the request is in flight (sleeping), as the status page says.
        let deadline = Date().addingTimeInterval(10)
        while try OperationsTests.status(app.address)["requests in flight"] as? Int != 1 {
            guard Date() < deadline else { throw TestFailure("the request never showed as in flight") }
            usleep(10_000)
        }
        app.child.signal(signal)
        let reply = try connection.readResponse()
        #expect(String(decoding: reply.body, as: UTF8.self) == "Hello, drain!\n")
        #expect(app.child.waitForExit(timeout: 10) == 0)
        #expect(throws: (any Error).self) { try FastCGIConnection(to: app.address, timeout: .seconds(1)) }
    }
}

/// The README's and `FastCGIService`'s sample, compiled (not run: it serves
/// until a signal).
enum ServiceDocSample {
    static func main() async throws {
        var configuration = Server.Configuration(address: "unix:/run/app/app.sock")
        configuration.handleSignals = false
        let server = Server(
            factories: [.responder: .async { request in try request.write("hi\n") }], configuration: configuration)
        let group = ServiceGroup(
            services: [FastCGIService(server)], gracefulShutdownSignals: [.sigterm, .sigint],
            logger: server.logger)
        try await group.run()
    }

    /// `Server.runUntilStopped()`.
    static func untilStopped() {
        let server = Server(
            configuration: .init(address: "127.0.0.1:9000"),
            asyncResponder: { request in
                try request.write("hi")
            })
        let serving = Task { try await server.runUntilStopped() }
        serving.cancel()
    }
}
