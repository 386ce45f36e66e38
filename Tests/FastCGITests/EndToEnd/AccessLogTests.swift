import FastCGIClient
import Foundation
import Testing

@testable import FastCGI

/// The opt-in access log, and what goes to FCGI_STDERR (the web server's
/// error log): real errors only, never a deliberate 4xx.
@Suite("Access log and the error stream", .timeLimit(.minutes(3)))
struct AccessLogTests {
    /// The JSON lines of `path`, parsed (polled: a line is written as the request ends).
    static func jsonLines(_ path: String, count: Int) throws -> [[String: Any]] {
        let deadline = Date().addingTimeInterval(10)
        var lines: [[String: Any]] = []
        repeat {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            lines = text.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            if lines.count >= count { break }
            usleep(20_000)
        } while Date() < deadline
        return lines
    }

    @Test("in memory, JSON Lines: method, path, status, bytes, duration, id, worker, peer, a millisecond timestamp")
    func inMemory() throws {
        let path = try TempDirectory.make().appendingPathComponent("access.log").path
        var configuration = Server.Configuration()
        configuration.accessLog = AccessLog(.file(path), format: .json)
        let server = Server(configuration: configuration) { request in
            if request.path == "/missing" { throw HTTPError(.notFound) }
            try request.write("four")
        }
        var get = TestRequest("GET", "/page?x=\"1\"")
        get.params["REMOTE_ADDR"] = "192.0.2.7"
        _ = server.respond(to: get)
        _ = server.respond(to: TestRequest("POST", "/missing", body: Array("a=1".utf8)))
        let lines = try Self.jsonLines(path, count: 2)
        #expect(lines.count == 2)
        #expect(lines.first?["method"] as? String == "GET" && lines.first?["path"] as? String == "/page?x=\"1\"")
        #expect(lines.first?["status"] as? Int == 200 && lines.first?["bytes"] as? Int == 4)
        #expect(lines.first?["peer"] as? String == "192.0.2.7" && lines.first?["worker"] as? Int == Int(getpid()))
        #expect((lines.first?["duration_ms"] as? Double).map { $0 >= 0 } == true)
        #expect((lines.first?["time"] as? String)?.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil)
        #expect(lines.last?["status"] as? Int == 404 && lines.last?["method"] as? String == "POST")
    }

    @Test(
        "behind nginx at every level: one text line per request; a 404 puts no [error] line in nginx's log",
        arguments: [0, 1, 2])
    func throughNginx(level: Int) throws {
        let log = try TempDirectory.make().appendingPathComponent("access.log").path
        let app = try RunningApp("guestbook", arguments: ["--threading-level", "\(level)", "--access-log", log])
        let nginx = try RunningNginx(upstream: app.address)
        #expect(try nginx.curl("/").code == 200)
        #expect(try nginx.curl("/no/such/page").code == 404)
        var text = ""
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if text.split(separator: "\n").count >= 2 { break }
            usleep(20_000)
        }
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.count == 2, "\(lines)")
        #expect(lines.first?.contains(" 127.0.0.1 GET / 200 ") == true, "\(lines)")
        #expect(lines.last?.contains(" GET /no/such/page 404 ") == true, "\(lines)")
        #expect(lines.last?.contains("worker=\(app.child.pid)") == true)
        #expect(!nginx.errorLog.contains("[error]"), "\(nginx.errorLog)")
    }
}
