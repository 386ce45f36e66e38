import FastCGIClient
import FastCGIWire
import Foundation
import Testing

/// Issue 29: the network never holds a worker. Uploads that stall past the
/// 64 KiB hand-off and clients that never read a response (past the kernel's
/// socket buffers) take no libfcgi worker and add no thread per connection;
/// a normal client is answered throughout; the input timeout ends the stalled
/// uploads and the send timeout the silent readers, logged and counted.
@Suite("Slow peers: the network never holds a worker", .serialized, .timeLimit(.minutes(5)))
struct SlowPeersTests {
    static let levels = [0, 1, 2]
    static let workers = 2

    static func app(level: Int, unix: Bool, _ extra: [String] = []) throws -> RunningApp {
        try RunningApp(
            "echo", unix: unix,
            arguments: ["--threading-level", "\(level)", "--workers", "\(workers)", "--status-path", "/status"] + extra)
    }

    /// A figure of the status page's text form.
    static func status(_ app: RunningApp, _ label: String) throws -> Int? {
        let page = String(decoding: try app.send(.http(uri: "/status")).body, as: UTF8.self)
        let line = page.split(separator: "\n").first { $0.hasPrefix("\(label):") }
        return line?.split(separator: " ").last.flatMap { Int($0) }
    }

    /// Waits (bounded: longer under a sanitizer) until `condition` holds;
    /// false if it never did.
    static func eventually(within seconds: Double = 15, _ condition: () throws -> Bool) rethrows -> Bool {
        let sanitized = ProcessInfo.processInfo.environment["SWIFT_FCGI_SANITIZER"] != nil
        let deadline = Date().addingTimeInterval(sanitized ? 4 * seconds : seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(20_000)
        }
        return try condition()
    }

    /// A normal client: `count` requests, one connection each, each answered
    /// with its own body echoed.
    static func normalClient(_ app: RunningApp, count: Int = 10, _ what: String) throws {
        for n in 0..<count {
            let connection = try FastCGIConnection(to: app.address, timeout: .seconds(5))
            defer { connection.close() }
            let body = Array("request \(n)".utf8)
            let reply = try connection.send(.http(method: "POST", uri: "/normal", body: body))
            #expect(reply.protocolStatus == .requestComplete, "\(what): request \(n)")
            #expect(reply.body == body, "\(what): request \(n)")
        }
    }

    @Test(
        "2 × workers uploads stalled at 200 KB of 400 KB: others answered, the input timeout ends them", arguments: levels,
        [false, true])
    func stalledUploads(level: Int, unix: Bool) throws {
        let what = "level \(level)\(unix ? " unix" : " tcp")"
        let app = try Self.app(level: level, unix: unix, ["--input-timeout", "3"])
        let stalled = try (0..<2 * Self.workers).map { _ in
            try StalledInputTests.stall(app.address, announced: 400_000, sent: 200_000)
        }
        defer { for connection in stalled { connection.close() } }
        // All arrived: in flight, or (slow under a sanitizer) already ended by
        // the input timeout.
        #expect(
            try Self.eventually {
                try (Self.status(app, "requests in flight") ?? 0) + (Self.status(app, "stalled requests") ?? 0)
                    == stalled.count
            }, "\(what)")
        try Self.normalClient(app, what)
        // Each stalled upload is ended by the input timeout: its END_REQUEST
        // (a 408 page where no handler had started: levels 0 and 1).
        for connection in stalled {
            let reply = try Raw.readResponses(connection, ids: [1])[1]!
            #expect(reply.endCount == 1, "\(what)")
            if level < 2 {
                #expect(String(decoding: reply.stdout, as: UTF8.self).hasPrefix("Status: 408"), "\(what)")
            }
        }
        #expect(try Self.status(app, "stalled requests") == stalled.count, "\(what)")
        try Self.normalClient(app, count: 2, "\(what), after")
    }

    @Test(
        "2 × workers clients that never read a 32 MiB page: others answered, the send timeout frees them", arguments: levels,
        [false, true])
    func silentReaders(level: Int, unix: Bool) throws {
        let what = "level \(level)\(unix ? " unix" : " tcp")"
        let app = try Self.app(level: level, unix: unix, ["--send-timeout", "2"])
        let readers = try (0..<2 * Self.workers).map { _ in
            let connection = try FastCGIConnection(to: app.address, timeout: .seconds(20))
            try connection.write(FastCGIRequest.http(extra: ["ECHO_PAGE": "\(32 << 20)"], keepConnection: true).encoded)
            return connection
        }
        defer { for connection in readers { connection.close() } }
        // Their pages are written (queued past the socket buffers) and the
        // workers free: the normal client is answered while they read nothing.
        try Self.normalClient(app, what)
        // No progress for 2 s: each connection is closed, counted and logged.
        #expect(try Self.eventually { try Self.status(app, "send timeouts") == readers.count }, "\(what)")
        #expect(app.child.stderrText.contains("the peer took no output for the send timeout"), "\(what)")
        // The reader sees its page cut short (the connection ends, mid-record
        // or between records), never an END_REQUEST.
        var received = 0
        while let record = try? readers[0].readRecord() {
            received += record.content.count
            #expect(record.type != .endRequest, "\(what): a cut page must not look complete")
        }
        #expect(received < 32 << 20, "\(what)")
        try Self.normalClient(app, count: 2, "\(what), after")
    }

    @Test("a reader slower than the handler but steady gets the whole page", arguments: [1, 2])
    func slowButSteadyReader(level: Int) throws {
        let app = try Self.app(level: level, unix: true, ["--send-timeout", "5"])
        let connection = try FastCGIConnection(to: app.address, timeout: .seconds(20))
        try connection.write(FastCGIRequest.http(extra: ["ECHO_PAGE": "\(8 << 20)"], keepConnection: true).encoded)
        // The handler has long returned (its worker serves others) while this
        // reader takes the page a piece at a time.
        try Self.normalClient(app, count: 3, "level \(level)")
        var stdout = 0
        var ended = false
        while !ended, let record = try connection.readRecord() {
            if record.type == .stdout { stdout += record.content.count }
            ended = record.type == .endRequest
            if stdout % (1 << 20) < 65536 { usleep(1000) }
        }
        #expect(ended, "level \(level)")
        #expect(stdout > 8 << 20, "level \(level): the page and its headers")
        #expect(try Self.status(app, "send timeouts") == 0)
    }

    @Test("200 stalled uploads and a burst of 2,000 connects: the thread count stays bounded", arguments: [0, 1])
    func threadsBounded(level: Int) throws {
        let app = try Self.app(level: level, unix: false, ["--input-timeout", "30"])
        let pid = app.child.pid
        // Once a request is answered the engine's own threads are all up.
        try Self.normalClient(app, count: 1, "level \(level), before")
        let before = AsyncHandlerTests.threads(pid)
        let stalled = try (0..<200).map { _ in try StalledInputTests.stall(app.address, announced: 400_000, sent: 100_000) }
        defer { for connection in stalled { connection.close() } }
        // All arrived (in flight, or under a sanitizer already past the input timeout).
        #expect(
            try Self.eventually {
                try (Self.status(app, "requests in flight") ?? 0) + (Self.status(app, "stalled requests") ?? 0)
                    == stalled.count
            })
        // Held requests wait in the poller: the serving threads go back to the
        // pool (8 kept), none per stalled upload.
        #expect(
            Self.eventually { AsyncHandlerTests.threads(pid) <= before + 8 },
            "level \(level): \(AsyncHandlerTests.threads(pid)) threads, \(before) before")
        var peak = 0
        var burst: [FastCGIConnection] = []
        for n in 0..<2000 {
            burst.append(try FastCGIConnection(to: app.address, timeout: .seconds(10)))
            if n % 50 == 0 { peak = max(peak, AsyncHandlerTests.threads(pid)) }
        }
        defer { for connection in burst { connection.close() } }
        peak = max(peak, AsyncHandlerTests.threads(pid))
        // At most 64 serve connections with nothing in flight, whatever comes.
        #expect(peak <= before + 64 + 8, "level \(level): peak \(peak) threads, \(before) before")
        try Self.normalClient(app, count: 3, "level \(level)")
    }
}

/// The same slow peers as HTTP clients, through nginx with
/// `fastcgi_request_buffering off` and `fastcgi_buffering off`, and through
/// HAProxy (which buffers neither whole bodies nor whole responses).
@Suite("Slow peers through nginx unbuffered and HAProxy", .serialized, .timeLimit(.minutes(5)))
struct SlowPeersFrontEndTests {
    enum FrontEnd: String, CaseIterable, Sendable { case nginx, haproxy }

    /// A raw HTTP client on the front end's port: writes `request`, reads nothing.
    static func rawHTTP(_ frontEnd: any HTTPFrontEnd, _ request: [UInt8]) throws -> FastCGIConnection {
        let port = frontEnd.url.split(separator: ":").last!
        let connection = try FastCGIConnection(to: "127.0.0.1:\(port)", timeout: .seconds(20))
        try connection.write(request)
        return connection
    }

    @Test("stalled uploads and silent readers: a normal client answered throughout", arguments: [1, 2], FrontEnd.allCases)
    func slowClients(level: Int, frontEnd kind: FrontEnd) throws {
        let what = "level \(level) via \(kind)"
        let app = try SlowPeersTests.app(
            level: level, unix: kind == .nginx, ["--input-timeout", "3", "--send-timeout", "2", "--ping-path", "/ping"])
        let frontEnd: any HTTPFrontEnd =
            kind == .nginx
            ? try RunningNginx(upstream: app.address, unbuffered: true) : try RunningHAProxy(upstream: app.address)
        let workers = SlowPeersTests.workers
        var peers: [FastCGIConnection] = []
        defer { for peer in peers { peer.close() } }
        for n in 0..<2 * workers {
            let head = "POST /upload/\(n) HTTP/1.1\r\nHost: localhost\r\nContent-Length: 400000\r\n\r\n"
            peers.append(try Self.rawHTTP(frontEnd, Array(head.utf8) + testBytes(200_000, seed: UInt64(n))))
            let page = "GET /page/\(n) HTTP/1.1\r\nHost: localhost\r\nX-Echo-Page: \(32 << 20)\r\n\r\n"
            peers.append(try Self.rawHTTP(frontEnd, Array(page.utf8)))
        }
        // Until the peers reach the app: both kinds in flight there.
        #expect(
            try SlowPeersTests.eventually { try SlowPeersTests.status(app, "requests in flight") ?? 0 >= 2 * workers },
            "\(what)")
        let body = Self.prefixDirectoryFile(frontEnd, "normal", Array("hello".utf8))
        for n in 0..<10 {
            let reply = try frontEnd.curl("/normal/\(n)", ["-m", "5"], body: body)
            #expect(reply.code == 200, "\(what): request \(n)")
            #expect(Array(reply.body) == Array("hello".utf8), "\(what): request \(n)")
        }
        // The app ends the silent readers (send timeout) and the stalled
        // uploads (input timeout); it goes on serving.
        #expect(
            try SlowPeersTests.eventually { try SlowPeersTests.status(app, "stalled requests") ?? 0 >= 1 }, "\(what)")
        let after = try frontEnd.curl("/normal/after", ["-m", "5"], body: body)
        #expect(after.code == 200, "\(what): after")
        if let nginx = frontEnd as? RunningNginx {
            // The normal client's requests left no trace in nginx's error log.
            #expect(!nginx.errorLog.contains("/normal/"), "\(what): \(nginx.errorLog.suffix(600))")
        }
    }

    /// A file holding `bytes` in the front end's scratch directory (curl's body).
    private static func prefixDirectoryFile(_ frontEnd: any HTTPFrontEnd, _ name: String, _ bytes: [UInt8]) -> URL {
        let url = frontEnd.prefix.appendingPathComponent(name)
        try? Data(bytes).write(to: url)
        return url
    }
}
