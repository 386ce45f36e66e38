import FastCGI
import FastCGIClient
import FastCGIService
import Foundation
import Logging
import ServiceLifecycle
import Testing

/// `FastCGIService`: a Server in a swift-service-lifecycle ServiceGroup.
@Suite("Service lifecycle", .serialized, .timeLimit(.minutes(2)))
struct ServiceTests {
    @Test("a graceful shutdown lets the request in flight finish, then run() returns")
    func gracefulShutdown() async throws {
        let directory = try TempDirectory.make()
        let address = "unix:\(directory.path)/service.sock"
        let server = Server(
            factories: [
                .responder: .async { request in
                    try await Task.sleep(for: .milliseconds(500))
                    try request.write("done\n")
                }
            ],
            threadingLevel: 2, address: .unix(path: "\(directory.path)/service.sock"), handleSignals: false)
        let group = ServiceGroup(services: [FastCGIService(server)], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        // Blocking client code off the cooperative pool: the group and the async
        // handler need it.
        let connection = try await OffPool.run {
            try Net.waitUntilListening(address)
            let connection = try FastCGIConnection(to: address)
            try connection.write(FastCGIRequest(params: [NameValuePair("REQUEST_METHOD", "GET")]))
            return Lent(connection)
        }
        // The request is in flight (sleeping) when the group shuts down.
        try await Task.sleep(for: .milliseconds(100))
        await group.triggerGracefulShutdown()
        let reply = try await OffPool.run { try connection.value.readResponse() }
        #expect(String(decoding: reply.body, as: UTF8.self) == "done\n")
        try await running.value
        #expect(server.isStopping)
        #expect(throws: (any Error).self) { try FastCGIConnection(to: address, timeout: 1) }
    }
}

/// The README's and `FastCGIService`'s sample, compiled (not run: it serves
/// until a signal).
enum ServiceDocSample {
    static func main() async throws {
        let server = Server(
            factories: [.responder: .async { request in try request.write("hi\n") }],
            address: "unix:/run/app/app.sock", handleSignals: false)
        let group = ServiceGroup(
            services: [FastCGIService(server)], gracefulShutdownSignals: [.sigterm, .sigint],
            logger: server.logger)
        try await group.run()
    }

    /// `Server.runUntilStopped()`.
    static func untilStopped() {
        let server = Server(address: "127.0.0.1:9000", asyncResponder: { request in try request.write("hi") })
        let serving = Task { try await server.runUntilStopped() }
        serving.cancel()
    }
}
