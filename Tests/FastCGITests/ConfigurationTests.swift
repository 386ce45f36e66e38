import FastCGI
import Foundation
import Testing

/// `Server.Configuration`: one value for every setting, the times as `Duration`.
/// (Every example app builds its server from one, so the end-to-end tests run
/// through it too.)
@Suite("Server.Configuration")
struct ConfigurationTests {
    @Test("the settings reach the server as given, the times as Duration")
    func settings() throws {
        var configuration = Server.Configuration(address: "unix:/run/app/app.sock", threadingLevel: 2)
        configuration.workers = 32
        configuration.maxRequests = 1000
        configuration.monitoring.requestTimeout = .seconds(30)
        configuration.monitoring.slowRequestThreshold = .milliseconds(1500)
        configuration.connectionLimits.inputTimeout = .seconds(20)
        configuration.connectionLimits.idleTimeout = nil
        configuration.shutdownTimeout = .milliseconds(2500)
        configuration.handleSignals = false
        configuration.monitoring.statusPath = "/status"
        configuration.limits.maxFormBytes = 1 << 20
        configuration.asyncHandlerLimit = 50
        let server = Server(factories: [.responder: .closure { try $0.write("ok") }], configuration: configuration)
        #expect(server.threadingLevel == 2 && server.workers == 32 && server.maxRequests == 1000)
        #expect(server.address == "unix:/run/app/app.sock" && server.asyncHandlerLimit == 50)
        #expect(server.monitoring.requestTimeout == .seconds(30))
        #expect(server.monitoring.slowRequestThreshold == .milliseconds(1500))
        #expect(server.monitoring.statusPath == "/status")
        #expect(server.connectionLimits.inputTimeout == .seconds(20) && server.connectionLimits.idleTimeout == nil)
        #expect(server.shutdownTimeout == .milliseconds(2500) && !server.handleSignals)
        #expect(server.limits.maxFormBytes == 1 << 20)
        #expect(server.configuration.workers == 32)
        #expect(server.respond(to: TestRequest()).text == "ok")
    }

    @Test("level 0 has one worker whatever the configuration says")
    func levelZeroWorkers() {
        var configuration = Server.Configuration(threadingLevel: 0)
        configuration.workers = 8
        #expect(Server(factories: [:], configuration: configuration).workers == 1)
    }

    @Test("the defaults are the SPEC initializer's")
    func defaults() {
        let configured = Server(factories: [:], configuration: Server.Configuration())
        let plain = Server(handlers: [:])
        #expect(configured.threadingLevel == plain.threadingLevel && configured.workers == plain.workers)
        #expect(configured.shutdownTimeout == plain.shutdownTimeout && configured.handleSignals == plain.handleSignals)
        #expect(configured.connectionLimits == plain.connectionLimits && configured.monitoring == plain.monitoring)
        #expect(configured.limits == plain.limits && configured.address == nil && configured.maxRequests == 0)
        #expect(configured.asyncHandlerLimit == nil && configured.processes == 0)
        #expect(plain.connectionLimits.inputTimeout == .seconds(60) && plain.connectionLimits.sendTimeout == .seconds(60))
    }

    @Test("the SPEC's short form: handler types, the seed's parameters")
    func specForm() {
        struct Hi: Handler {
            func process(_ request: Request) throws { try request.write("hi") }
        }
        let server = Server(
            handlers: [.responder: Hi.self], maxRequests: 5, params: ["FCGI_MAX_CONNS": "3"], threadingLevel: 2, workers: 4,
            address: "127.0.0.1:0", shutdownTimeout: .seconds(1))
        #expect(server.maxRequests == 5 && server.threadingLevel == 2 && server.workers == 4)
        #expect(server.managementValues["FCGI_MAX_CONNS"] == "3" && server.shutdownTimeout == .seconds(1))
        #expect(server.respond(to: TestRequest()).text == "hi")
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

/// `Configuration.prepare` in one process: once before serving; an error
/// stops `run()` and leaves no socket file behind.
@Suite("Server.Configuration.prepare")
struct PrepareTests {
    @Test("runs once before serving; Server.isPoolWorker is false outside a pool")
    func once() throws {
        let directory = try TempDirectory.make()
        let calls = Locked(0)
        var configuration = Server.Configuration(address: .unix(path: "\(directory.path)/app.sock"))
        configuration.handleSignals = false
        configuration.prepare = { calls.withLock { $0 += 1 } }
        let server = Server(factories: [.responder: .closure { try $0.write("served") }], configuration: configuration)
        let stopped = DispatchSemaphore(value: 0)
        Thread {
            try? server.run()
            stopped.signal()
        }.start()
        try Net.waitUntilListening("unix:\(directory.path)/app.sock")
        #expect(calls.withLock { $0 } == 1)
        #expect(!Server.isPoolWorker)
        server.exit()
        stopped.wait()
        #expect(calls.withLock { $0 } == 1)
    }

    @Test("an error from prepare stops run(), which rethrows it and removes the socket file")
    func failing() throws {
        struct MigrationFailed: Error {}
        let directory = try TempDirectory.make()
        let path = "\(directory.path)/app.sock"
        var configuration = Server.Configuration(address: .unix(path: path))
        configuration.handleSignals = false
        configuration.prepare = { throw MigrationFailed() }
        #expect(throws: MigrationFailed.self) {
            try Server(factories: [:], configuration: configuration).run()
        }
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}

/// `ServerError`'s causes, as a caller matches on them.
@Suite("ServerError causes")
struct ServerErrorTests {
    @Test("an address that does not resolve is a bad address; run() twice is a usage error")
    func causes() throws {
        var configuration = Server.Configuration(address: "no-such-host.invalid:9000")
        configuration.handleSignals = false
        let server = Server(factories: [:], configuration: configuration)
        #expect { try server.run() } throws: { ($0 as? ServerError)?.cause == .badAddress }
        #expect { try server.run() } throws: { ($0 as? ServerError)?.cause == .usage }
    }

    @Test("a socket path past the kernel's limit is a bad address")
    func longPath() {
        var configuration = Server.Configuration(address: .unix(path: "/tmp/" + String(repeating: "x", count: 200)))
        configuration.handleSignals = false
        #expect { try Server(factories: [:], configuration: configuration).run() } throws: {
            ($0 as? ServerError)?.cause == .badAddress
        }
    }
}
