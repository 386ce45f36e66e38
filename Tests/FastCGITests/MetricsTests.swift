import FastCGI
import FastCGIClient
import FastCGIWire
import Foundation
import MetricsTestKit
import Testing

/// The request metrics through swift-metrics (`Server.metricsFactory`), under
/// OpenTelemetry's HTTP server names.
@Suite("Metrics: swift-metrics with OpenTelemetry's names")
struct MetricsTests {
    struct Teapot: Error {}

    static func handler(_ request: Request) throws {
        switch request.path {
        case "/missing": throw HTTPError(.notFound)
        case "/boom": throw Teapot()
        case "/unavailable": try request.setStatus(503)
        default: try request.write("ok")
        }
    }

    /// The duration timers' dimensions, as `name=value` strings sorted, one
    /// string per series, with how many requests each recorded.
    static func series(_ metrics: TestMetrics) -> [String: Int] {
        var series: [String: Int] = [:]
        for timer in metrics.timers(label: "http.server.request.duration") {
            let key = timer.dimensions.map { "\($0.0)=\($0.1)" }.sorted().joined(separator: " ")
            series[key, default: 0] += timer.values.count
        }
        return series
    }

    @Test("duration by method and status, error.type for a 5xx, active back to 0, handler errors counted")
    func inMemory() throws {
        let metrics = TestMetrics()
        var configuration = Server.Configuration()
        configuration.metricsFactory = metrics
        let server = Server(factories: [.responder: .closure(Self.handler)], configuration: configuration)
        for (method, path) in [("GET", "/"), ("GET", "/"), ("POST", "/missing"), ("GET", "/boom"), ("BREW", "/")] {
            _ = server.respond(to: TestRequest(method, path))
        }
        _ = server.respond(to: TestRequest("GET", "/unavailable"))
        #expect(
            Self.series(metrics) == [
                "http.request.method=GET http.response.status_code=200": 2,
                "http.request.method=POST http.response.status_code=404": 1,
                "error.type=Teapot http.request.method=GET http.response.status_code=500": 1,
                "http.request.method=_OTHER http.response.status_code=200": 1,
                "error.type=503 http.request.method=GET http.response.status_code=503": 1,
            ])
        let active = try metrics.expectMeter("http.server.active_requests")
        #expect(active.values.count == 12 && active.lastValue == 0)
        #expect(try metrics.expectCounter("fastcgi.server.errors", [("error.type", "handler")]).totalValue == 1)
    }

    @Test("no factory and none bootstrapped: nothing is made")
    func noFactory() {
        let server = Server(factories: [.responder: .closure(Self.handler)])
        #expect(server.metricsFactory == nil)
        #expect(server.respond(to: TestRequest("GET", "/")).status == 200)
    }

    /// The engine's own events through a real socket: the server in this process
    /// (the factory is an object here), the client over a unix socket.
    @Test("over a socket, levels 1 and 2: a request served, one aborted by the web server", arguments: [1, 2])
    func overSocket(level: Int) throws {
        let metrics = TestMetrics()
        let address = "unix:\(try TempDirectory.make().path)/app.sock"
        var configuration = Server.Configuration(
            address: try ListenAddress(parsing: address), threadingLevel: ThreadingLevel(integerLiteral: level))
        configuration.handleSignals = false
        configuration.metricsFactory = metrics
        let server = Server(factories: [.responder: .closure(Self.handler)], configuration: configuration)
        let stopped = DispatchSemaphore(value: 0)
        let thread = Thread {
            try? server.run()
            stopped.signal()
        }
        thread.start()
        defer {
            server.exit()
            _ = stopped.wait(timeout: .now() + 20)
        }
        try Net.waitUntilListening(address)
        let connection = try FastCGIConnection(to: address)
        let served = try connection.send(
            FastCGIRequest(params: [NameValuePair("REQUEST_METHOD", "GET")], keepConnection: true))
        #expect(served.stdout.count > 0)
        // A request whose body never ends, aborted by the "web server".
        try connection.write(
            Raw.begin(2, params: ["REQUEST_METHOD": "POST", "CONTENT_LENGTH": "10"]) + Raw.stream(.stdin, 2, [1], close: false))
        try connection.abort(requestID: 2)
        let aborted = try connection.readResponse(requestID: 2)
        #expect(aborted.protocolStatus == .requestComplete)
        #expect(try metrics.expectCounter("fastcgi.server.errors", [("error.type", "aborted")]).totalValue == 1)
        #expect(Self.series(metrics)["http.request.method=GET http.response.status_code=200"] == 1)
    }
}
