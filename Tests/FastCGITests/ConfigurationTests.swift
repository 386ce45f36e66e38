import FastCGI
import Testing

/// `Server.Configuration`: one value for every setting, the times as `Duration`.
/// (Every example app builds its server from one, so the end-to-end tests run
/// through it too.)
@Suite("Server.Configuration")
struct ConfigurationTests {
    @Test("the settings reach the server; Duration maps onto the seconds kept; it round-trips")
    func settings() throws {
        var configuration = Server.Configuration()
        configuration.threadingLevel = 2
        configuration.workers = 32
        configuration.address = "unix:/run/app/app.sock"
        configuration.maxRequests = 1000
        configuration.requestTimeout = .seconds(30)
        configuration.slowRequestThreshold = .milliseconds(1500)
        configuration.inputTimeout = .seconds(20)
        configuration.idleTimeout = nil
        configuration.shutdownTimeout = .milliseconds(2500)
        configuration.handleSignals = false
        configuration.monitoring.statusPath = "/status"
        configuration.limits.maxFormBytes = 1 << 20
        let server = Server(factories: [.responder: .closure { try $0.write("ok") }], configuration: configuration)
        #expect(server.threadingLevel == 2 && server.workers == 32 && server.maxRequests == 1000)
        #expect(server.address == "unix:/run/app/app.sock")
        #expect(server.monitoring.requestTimeout == 30 && server.monitoring.slowRequestThreshold == 1.5)
        #expect(server.monitoring.statusPath == "/status")
        #expect(server.connectionLimits.inputTimeout == 20 && server.connectionLimits.idleTimeout == nil)
        #expect(server.shutdownTimeout == 2.5 && !server.handleSignals)
        #expect(server.limits.maxFormBytes == 1 << 20)

        let again = server.configuration
        #expect(again.requestTimeout == .seconds(30) && again.slowRequestThreshold == .milliseconds(1500))
        #expect(again.inputTimeout == .seconds(20) && again.idleTimeout == nil)
        #expect(again.shutdownTimeout == .milliseconds(2500) && again.workers == 32)
        #expect(server.respond(to: TestRequest()).text == "ok")
    }

    @Test("the defaults are the SPEC initializer's")
    func defaults() {
        let configured = Server(factories: [:], configuration: Server.Configuration())
        let plain = Server(factories: [:])
        #expect(configured.threadingLevel == plain.threadingLevel && configured.workers == plain.workers)
        #expect(configured.shutdownTimeout == plain.shutdownTimeout && configured.handleSignals == plain.handleSignals)
        #expect(configured.connectionLimits == plain.connectionLimits && configured.monitoring == plain.monitoring)
        #expect(configured.limits == plain.limits && configured.address == nil && configured.maxRequests == 0)
    }

    @Test("Swift names beside the original's: removeHeader is delHeader, bytesWritten is tell()")
    func swiftNames() throws {
        let server = Server(factories: [
            .responder: .closure { request in
                try request.setHeader("X-Gone", "1")
                try request.removeHeader("X-Gone")
                try request.write("four")
                try request.setHeader("X-Written", "\(request.bytesWritten) \(request.tell())")
            }
        ])
        let response = server.respond(to: TestRequest())
        #expect(response.header("X-Gone") == nil)
        #expect(response.header("X-Written") == "4 4")
    }
}
