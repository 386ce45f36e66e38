import FastCGIClient
import FastCGIWire
import Foundation
import Testing

@testable import FastCGI

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 33, point 3: `request.finish()` sends the whole response and ends the
/// request for the web server; the handler goes on. The echo example's
/// `ECHO_AFTER_MS` finishes after its echo, then works that long and logs
/// "echo: background work done": the tests wait for that line, not for time.
@Suite("request.finish(): respond, then work", .serialized, .timeLimit(.minutes(3)))
struct FinishTests {
    /// As nginx sends it (`SERVER_SOFTWARE`: the closing mark is for nginx).
    static func request(_ body: [UInt8], after ms: Int, keep: Bool = true) -> FastCGIRequest {
        .http(
            method: "POST", body: body, extra: ["ECHO_AFTER_MS": "\(ms)", "SERVER_SOFTWARE": "nginx/1.22.1"],
            keepConnection: keep)
    }

    @Test("the web server has the response while the handler works; a drain waits for that work", arguments: [0, 1, 2])
    func answeredBeforeTheWorkEnds(level: Int) throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "\(level)"])
        let connection = try FastCGIConnection(to: app.address, timeout: .seconds(10))
        let reply = try connection.send(Self.request(Array("hello".utf8), after: 3000))
        #expect(reply.body == Array("hello".utf8))
        #expect(reply.protocolStatus == .requestComplete)
        // The end came before the work's.
        #expect(!app.child.stderrText.contains("echo: background work done"), "level \(level)")
        try app.waitForLog("echo: answered; working 3000 ms more")
        // A stop now waits for the work, as for a request in flight.
        app.child.signal(SIGTERM)
        #expect(app.child.waitForExit(timeout: 15) == 0)
        let log = app.child.stderrText
        #expect(log.contains("echo: background work done"), "level \(level): \(log.suffix(600))")
        #expect(log.contains("stopped: every request finished"), "level \(level): \(log.suffix(600))")
    }

    /// Level 0 runs one request at a time, the work after `finish()` included.
    @Test(
        "the kept connection serves the next request meanwhile (level 2), or closes with the end (level 1)",
        arguments: [1, 2])
    func keptConnection(level: Int) throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "\(level)"])
        let connection = try FastCGIConnection(to: app.address, timeout: .seconds(10))
        _ = try connection.send(Self.request([1], after: 3000))
        if level == 2 {
            let next = try connection.send(FastCGIRequest.http(method: "POST", body: [2], keepConnection: true))
            #expect(next.body == [2])
            #expect(!app.child.stderrText.contains("echo: background work done"))
        } else {
            // A handler run on the connection's own thread holds it: the end
            // carries the mark that tells the web server not to keep it.
            if connection.hasUnreadBytes {
                let mark = try connection.readRecord()
                #expect(mark?.type == .unknownType && mark?.requestID == 0)
                #expect(try connection.readRecord() == nil, "level \(level): closed behind the mark")
                let fresh = try FastCGIConnection(to: app.address, timeout: .seconds(10))
                #expect(try fresh.send(FastCGIRequest.http(method: "POST", body: [2])).body == [2])
            } else {
                #expect(try connection.send(FastCGIRequest.http(method: "POST", body: [2])).body == [2])
            }
            #expect(!app.child.stderrText.contains("echo: background work done"), "level \(level)")
        }
        try app.waitForLog("echo: background work done")
    }

    @Test("behind nginx: the client has the whole response while the handler works")
    func behindNginx() throws {
        let app = try RunningApp("echo", unix: true)
        let nginx = try RunningNginx(upstream: app.address)
        let body = nginx.prefix.appendingPathComponent("body")
        try Data(testBytes(100_000)).write(to: body)
        let (code, data) = try nginx.curl("/finish", ["-H", "X-Echo-After-Ms: 3000"], body: body)
        #expect(code == 200)
        #expect(data == Data(testBytes(100_000)))
        #expect(!app.child.stderrText.contains("echo: background work done"))
        try app.waitForLog("echo: background work done")
        #expect(!nginx.errorLog.contains("[error]"), "\(nginx.errorLog.suffix(400))")
    }

    @Test("the access log writes the request's line at finish() and one for the work after it")
    func accessLog() throws {
        let path = try TempDirectory.make().appendingPathComponent("access.log").path
        var configuration = Server.Configuration()
        configuration.accessLog = AccessLog(.file(path), format: .json)
        let server = Server(configuration: configuration) { request in
            try request.write("done")
            request.finish()
            let written = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            #expect(written.split(separator: "\n").count == 1)
            #expect(throws: SequencingError.self) { try request.write("late") }
        }
        let response = server.respond(to: TestRequest("POST", "/work", body: Array("ignored".utf8)))
        #expect(response.body == Array("done".utf8))
        let lines = try AccessLogTests.jsonLines(path, count: 2)
        #expect(lines.count == 2)
        #expect(lines.first?["status"] as? Int == 200 && lines.first?["background"] == nil)
        #expect(lines.last?["background"] as? Bool == true)
    }

    @Test("an async handler awaits finish(): the body's rest is read and dropped, later writes throw")
    func asyncHandler() async throws {
        let server = Server(configuration: Server.Configuration()) { (request: Request) async throws in
            try request.write("early")
            await request.finish()
            #expect(request.isFinished)
            #expect(throws: SequencingError.self) { try request.write("late") }
            #expect(try await request.stdin.read().isEmpty)
        }
        let response = await server.respond(to: TestRequest("POST", "/", body: [UInt8](repeating: 7, count: 200_000)))
        #expect(response.body == Array("early".utf8))
    }
}
