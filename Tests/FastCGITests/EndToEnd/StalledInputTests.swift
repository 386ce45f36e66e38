import FastCGIClient
import FastCGIWire
import Foundation
import Testing

/// Issue 16, point 5: uploads whose body stops arriving. A request takes no
/// worker before its input can make progress (``HeldRequest``), and one whose
/// input stalls past the input timeout is ended: the web server gets a
/// `408 Request Timeout` page and its END_REQUEST, the handler's read fails, the
/// app logs and counts it.
@Suite("Stalled uploads: no worker taken, ended by the input timeout", .serialized, .timeLimit(.minutes(5)))
struct StalledInputTests {
    static let levels = [0, 1, 2]

    /// Opens a connection and sends a POST announcing `announced` body bytes but
    /// only `sent` of them, then nothing more.
    static func stall(_ address: String, announced: Int = 1_000_000, sent: Int) throws -> FastCGIConnection {
        let connection = try FastCGIConnection(to: address, timeout: .seconds(20))
        let params = [
            "REQUEST_METHOD": "POST", "CONTENT_LENGTH": "\(announced)", "REQUEST_URI": "/upload", "SCRIPT_NAME": "/upload",
        ]
        try connection.write(Raw.begin(1, keep: false, params: params) + Raw.stream(.stdin, 1, testBytes(sent), close: false))
        return connection
    }

    @Test("12 stalled uploads on 2 workers: a fresh request is answered at once", arguments: levels)
    func freshRequestServed(level: Int) throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "\(level)", "--workers", "2"])
        let stalled = try (0..<12).map { _ in try Self.stall(app.address, sent: 16 << 10) }
        defer { for connection in stalled { connection.close() } }
        // Time for the app to read them (before the fix, each then held a worker).
        usleep(300_000)
        let connection = try FastCGIConnection(to: app.address, timeout: .seconds(10))
        let body = testBytes(3000, seed: 7)
        let reply = try connection.send(.http(method: "POST", uri: "/fresh", body: body))
        #expect(reply.protocolStatus == .requestComplete)
        #expect(reply.body == body, "level \(level): the fresh request's echo")
        #expect(app.child.isRunning)
    }

    @Test("a stalled upload is ended by the input timeout, small or past one record", arguments: levels)
    func inputTimeout(level: Int) throws {
        let app = try RunningApp(
            "echo",
            arguments: ["--threading-level", "\(level)", "--workers", "2", "--input-timeout", "1", "--status-path", "/status"])
        // 1 KiB: held, no handler started. 200 KiB, past the 64 KiB of one
        // record: still held at every level (a blocking handler's body is
        // gathered before it starts, past 64 KiB in shared memory or a file).
        let held = try Self.stall(app.address, sent: 1 << 10)
        let large = try Self.stall(app.address, sent: 200 << 10)
        defer {
            held.close()
            large.close()
        }
        // The held one never ran: its reply is the 408 page.
        let heldReply = try Raw.readResponses(held, ids: [1])[1]!
        #expect(heldReply.protocolStatus == .requestComplete, "level \(level)")
        #expect(heldReply.endCount == 1, "level \(level)")
        let text = String(decoding: heldReply.stdout, as: UTF8.self)
        #expect(text.hasPrefix("Status: 408 Request Timeout\r\n"), "level \(level): \(text.prefix(80))")
        #expect(text.contains("The request body stopped arriving."), "level \(level)")
        let largeReply = try Raw.readResponses(large, ids: [1])[1]!
        #expect(largeReply.protocolStatus == .requestComplete, "level \(level)")
        #expect(largeReply.endCount == 1, "level \(level)")
        let largeText = String(decoding: largeReply.stdout, as: UTF8.self)
        // Gathered, never started: the 408 page, no handler ran.
        #expect(largeText.hasPrefix("Status: 408 Request Timeout\r\n"), "level \(level): \(largeText.prefix(80))")
        // Counted on the status page and logged with the request; no handler
        // ran, so none saw its read fail.
        let status = try app.send(.http(uri: "/status"))
        let line = String(decoding: status.body, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("stalled requests:") }
        #expect(line?.split(separator: " ").last == "2", "level \(level): \(line ?? "no stalled-requests line")")
        let log = try waitForLog(app, containing: "no input for 1.0 seconds before its end")
        #expect(log.contains("no input for 1.0 seconds before its end; ending it"), "level \(level)")
        #expect(!log.contains("no input came for the input timeout"), "level \(level): a handler's read failed")
        // The app goes on serving.
        let reply = try app.send(.http(method: "POST", uri: "/after", body: Array("next".utf8)))
        #expect(reply.body == Array("next".utf8))
    }

    @Test("input that keeps coming, slowly, is not a stall", arguments: [1, 2])
    func slowButSteady(level: Int) throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "\(level)", "--input-timeout", "1"])
        let connection = try FastCGIConnection(to: app.address, timeout: .seconds(20))
        let body = testBytes(6 << 10, seed: 3)
        let params = ["REQUEST_METHOD": "POST", "CONTENT_LENGTH": "\(body.count)", "REQUEST_URI": "/slow"]
        try connection.write(Raw.begin(1, keep: false, params: params))
        // 6 chunks 0.4 s apart: 2.4 s in all, never 1 s without input.
        for chunk in 0..<6 {
            try connection.write(Raw.stream(.stdin, 1, Array(body[chunk << 10..<(chunk + 1) << 10]), close: false))
            usleep(400_000)
        }
        try connection.write(Raw.stream(.stdin, 1, []))
        let reply = try Raw.readResponses(connection, ids: [1])[1]!
        #expect(reply.protocolStatus == .requestComplete)
        #expect(reply.body == body, "level \(level): the slow body echoed whole")
    }

    /// The app's log once it holds `text` (bounded: the log is written after the reply).
    private func waitForLog(_ app: RunningApp, containing text: String) throws -> String {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let log = app.child.stderrText
            if log.contains(text) { return log }
            usleep(20_000)
        }
        return app.child.stderrText
    }
}
