import FastCGIClient
import FastCGIWire
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 8: socket activation, IPv6, status and ping pages, slow-request log and
/// request timeout — real processes, bounded in time.
@Suite("Operations: socket activation, IPv6, status, timeouts", .serialized, .timeLimit(.minutes(5)))
struct OperationsTests {
    /// The status page as JSON, fetched with a FastCGI request.
    static func status(_ address: String, path: String = "/status", query: String = "json") throws -> [String: Any] {
        let reply = try FastCGIConnection(to: address).send(.http(uri: "\(path)?\(query)"))
        #expect(reply.header("Content-Type") == "application/json")
        let object = try JSONSerialization.jsonObject(with: Data(reply.body))
        return object as? [String: Any] ?? [:]
    }

    // MARK: systemd socket activation

    @Test("socket activation: the socket systemd passes as fd 3 is served", arguments: [0, 1, 2])
    func activation(level: Int) throws {
        let app = try ActivatedApp("echo", names: ["fastcgi"], arguments: ["--threading-level", "\(level)"])
        let connection = try FastCGIConnection(to: app.addresses[0], timeout: .seconds(20))
        #expect(try connection.getValues(["FCGI_MPXS_CONNS"]) == ["FCGI_MPXS_CONNS": level == 2 ? "1" : "0"])
        let reply = try connection.send(.http(method: "POST", body: Array("activated".utf8)))
        #expect(reply.body == Array("activated".utf8))
        #expect(app.log.contains("listening on the socket systemd passed (fd 3, fastcgi)"))
        app.stop()
        #expect(app.exitStatus == 0)
    }

    @Test("socket activation with two sockets: LISTEN_FDNAMES picks the one named by --socket-name")
    func activationNames() throws {
        let app = try ActivatedApp("echo", names: ["admin", "fastcgi"], arguments: ["--socket-name", "fastcgi"])
        let reply = try FastCGIConnection(to: app.addresses[1], timeout: .seconds(20)).send(.http(method: "POST", body: [4]))
        #expect(reply.body == [4])
        #expect(app.log.contains("(fd 4, fastcgi)"))
        // The other socket is not served: a connection waits in its backlog.
        let other = try FastCGIConnection(to: app.addresses[0], timeout: .seconds(0.5))
        #expect(throws: ClientError.self) { try other.getValues(["FCGI_MAX_CONNS"]) }

        let wrong = try ActivatedApp("echo", names: ["admin"], arguments: ["--socket-name", "fastcgi"])
        #expect(wrong.waitForExit(timeout: 10) != 0)
        #expect(wrong.log.contains("no socket named \"fastcgi\""))
    }

    @Test("LISTEN_PID of another process: not activated, the app falls back to CGI")
    func activationOtherPID() throws {
        let app = try ActivatedApp("hello", names: ["fastcgi"], listenPID: "1")
        #expect(app.waitForExit(timeout: 10) == 0)
        #expect(app.log.contains("Hello, world!"))
    }

    // MARK: IPv6

    @Test("--bind [::1]:port, and FCGI_WEB_SERVER_ADDRS with IPv6 and IPv4-mapped peers")
    func ipv6() throws {
        let allowed = try ChildProcess(
            Paths.app("echo"), ["--bind", "[::1]:0"], environment: ["FCGI_WEB_SERVER_ADDRS": "10.1.1.1, ::1"])
        let port = try Net.listeningPort(of: allowed.pid)
        try Net.waitUntilListening("[::1]:\(port)")
        #expect(try FastCGIConnection(to: "[::1]:\(port)").send(.http(method: "POST", body: [6])).body == [6])
        allowed.stop()

        let refused = try ChildProcess(
            Paths.app("echo"), ["--bind", "[::1]:0"], environment: ["FCGI_WEB_SERVER_ADDRS": "127.0.0.1"])
        let refusedPort = try Net.listeningPort(of: refused.pid)
        try Net.waitUntilListening("[::1]:\(refusedPort)")
        #expect(throws: ClientError.self) { try FastCGIConnection(to: "[::1]:\(refusedPort)").send(.http()) }
        #expect(refused.stderrText.contains("not in FCGI_WEB_SERVER_ADDRS"))
        refused.stop()

        // A dual-stack socket sees an IPv4 client as ::ffff:127.0.0.1: the IPv4 entry matches.
        let dual = try ChildProcess(
            Paths.app("echo"), ["--bind", "[::]:0"], environment: ["FCGI_WEB_SERVER_ADDRS": "127.0.0.1"])
        let dualPort = try Net.listeningPort(of: dual.pid)
        try Net.waitUntilListening("127.0.0.1:\(dualPort)")
        #expect(try FastCGIConnection(to: "127.0.0.1:\(dualPort)").send(.http(method: "POST", body: [4])).body == [4])
        dual.stop()

        // Unix-socket peers are never refused by the list (libfcgi refuses them).
        let unix = try RunningApp("echo", unix: true, environment: ["FCGI_WEB_SERVER_ADDRS": "10.1.1.1"])
        #expect(try unix.send(.http(method: "POST", body: [8])).body == [8])
    }

    // MARK: Status and ping

    @Test("ping and status answer without a handler, even with every worker busy", arguments: [0, 1, 2])
    func statusAndPing(level: Int) throws {
        let app = try RunningApp(
            "echo",
            arguments: ["--threading-level", "\(level)", "--workers", "1", "--ping-path", "/ping", "--status-path", "/status"])
        let ping = try app.send(.http(uri: "/ping"))
        #expect(ping.header("Content-Type") == "text/plain")
        #expect(ping.body == Array("pong\n".utf8))
        // Occupy the only worker (levels 0 and 1), then ask again.
        let busy = try FastCGIConnection(to: app.address, timeout: .seconds(10))
        try busy.write(FastCGIRequest.http(method: "POST", body: [1], extra: ["ECHO_SLEEP_MS": "1500"]).encoded)
        try app.waitForLog("echo: sleeping")
        let start = Date()
        #expect(try app.send(.http(uri: "/ping")).body == Array("pong\n".utf8))
        let status = try Self.status(app.address)
        #expect(Date().timeIntervalSince(start) < 1, "ping and status waited for the busy worker")
        #expect(status["requests in flight"] as? Int == 1)
        #expect(status["active workers"] as? Int == 1)
        #expect(status["threading level"] as? Int == level)
        #expect((status["accepted conn"] as? Int ?? 0) >= 3)
        #expect(try busy.readResponse().body == [1])

        let text = try app.send(.http(uri: "/status"))
        let body = String(decoding: text.body, as: UTF8.self)
        #expect(body.contains("requests served:"))
        #expect(body.contains("slow requests:"))
        // Ping and status requests are not counted as served requests.
        #expect(try Self.status(app.address)["requests served"] as? Int == 1)
        // The same figures in the OpenMetrics text format, for Prometheus.
        let metrics = try app.send(.http(uri: "/status?openmetrics"))
        #expect(metrics.header("Content-Type")?.hasPrefix("application/openmetrics-text") == true)
        let lines = String(decoding: metrics.body, as: UTF8.self).split(separator: "\n").map(String.init)
        #expect(lines.contains("# TYPE fastcgi_requests_served counter"))
        #expect(lines.contains("fastcgi_requests_served_total 1"))
        #expect(lines.contains("fastcgi_threading_level \(level)"))
        #expect(lines.last == "# EOF")
        // Every sample line is `name value`, with a name OpenMetrics allows.
        for line in lines where !line.hasPrefix("#") {
            #expect(line.wholeMatch(of: /[a-z_]+(\{worker="\d+"\})? -?[\d.]+/) != nil, "\(line)")
        }
        // Other paths still reach the handler.
        #expect(try app.send(.http(method: "POST", uri: "/pingx", body: [2])).body == [2])
    }

    @Test("?full lists each open connection: peer, state, requests served and in flight", arguments: [1, 2])
    func fullStatus(level: Int) throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "\(level)", "--status-path", "/status"])
        let kept = try FastCGIConnection(to: app.address, timeout: .seconds(10))
        for i in 1...2 {
            let reply = try kept.send(.http(method: "POST", body: [UInt8(i)], keepConnection: true))
            #expect(reply.body == [UInt8(i)])
        }
        // The kept connection, quiet now, is parked by its thread (soon: wait for it).
        var entry: [String: Any]?
        for _ in 0..<250 {
            let connections = try Self.status(app.address, query: "json&full")["connections"] as? [[String: Any]] ?? []
            entry = connections.first { $0["served"] as? Int == 2 }
            if entry?["state"] as? String == "parked" { break }
            usleep(20_000)
        }
        #expect(entry?["state"] as? String == "parked")
        #expect(entry?["peer"] as? String == "127.0.0.1")
        #expect(entry?["in flight"] as? Int == 0)
        #expect((entry?["start time"] as? Int ?? 0) > 1_700_000_000)
        // The text form has a line for it; without ?full there is no list.
        let text = String(decoding: try app.send(.http(uri: "/status?full")).body, as: UTF8.self)
        #expect(text.contains("peer 127.0.0.1, parked, in flight 0, served 2, open "))
        #expect(try Self.status(app.address)["connections"] == nil)
        kept.close()
    }

    // MARK: Slow requests and timeouts

    @Test("slow log and request timeout: 504 after the timeout, logged once, counted", arguments: [0, 1, 2])
    func timeout(level: Int) throws {
        let app = try RunningApp(
            "echo",
            arguments: [
                "--threading-level", "\(level)", "--slow-request", "0.3", "--request-timeout", "1", "--status-path", "/status",
            ])
        let start = Date()
        let reply = try app.send(.http(uri: "/slow/page?x=1", extra: ["ECHO_SLEEP_MS": "2500"]))
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed > 0.9 && elapsed < 2, "answered after \(elapsed) s")
        #expect(reply.header("Status") == "504 Gateway Timeout")
        #expect(reply.endCount == 1)
        #expect(reply.protocolStatus == .requestComplete)
        let status = try Self.status(app.address)
        #expect(status["slow requests"] as? Int == 1)
        #expect(status["timed out requests"] as? Int == 1)
        // The handler's thread runs on; the next request is served (at level 0 once
        // the one worker is free again).
        #expect(try app.send(.http(method: "POST", body: [3])).body == [3])
        let log = app.child.stderrText
        #expect(log.contains("slow request: running for 0."))  // 0.3 s plus at most one watchdog tick
        #expect(log.contains("SCRIPT_NAME=/slow/page"))
        #expect(log.contains("REQUEST_URI=/slow/page?x=1"))
        #expect(log.contains("request timed out after 1."))  // 1 s plus at most a watchdog tick
        #expect(log.components(separatedBy: "slow request:").count == 2, "logged once")
    }

    @Test("request id 1 reused at once on a kept connection: each slow one is still timed out", arguments: [0, 1])
    func timeoutWithReusedID(level: Int) throws {
        // The end of one request used to leave the watchdog after its
        // END_REQUEST was written, so it could remove the entry of the next
        // request with the same id (nginx always sends 1), started meanwhile
        // from the pipeline: that one was never timed out.
        let app = try RunningApp("echo", arguments: ["--threading-level", "\(level)", "--request-timeout", "0.5"])
        let connection = try FastCGIConnection(to: app.address, timeout: .seconds(10))
        for round in 0..<4 {
            let start = Date()
            // Pipelined: the slow one starts as the quick one ends.
            try connection.write(
                FastCGIRequest.http(method: "POST", body: [1], keepConnection: true).encoded
                    + FastCGIRequest.http(extra: ["ECHO_SLEEP_MS": "2000"], keepConnection: true).encoded)
            #expect(try connection.readResponse().body == [1], "round \(round)")
            let reply = try connection.readResponse()
            #expect(reply.header("Status") == "504 Gateway Timeout", "round \(round)")
            #expect(Date().timeIntervalSince(start) < 1.8, "round \(round): not timed out")
            // The sleeping handler holds its worker until it returns.
            if level == 0 { usleep(1_600_000) }
        }
    }

    @Test("a timed-out request that already sent output is cut off, not given a 504")
    func timeoutAfterOutput() throws {
        // Under a sanitizer the handler is slow enough to still be echoing at 1 s.
        let timeout = ProcessInfo.processInfo.environment["SWIFT_FCGI_SANITIZER"] == nil ? "1" : "5"
        let app = try RunningApp("echo", arguments: ["--threading-level", "2", "--request-timeout", timeout])
        let connection = try FastCGIConnection(to: app.address, timeout: .seconds(20))
        // A body of two stdin records, each chunk echoed and flushed as it is
        // read (ECHO_FLUSH: the handler may read the two records in one chunk
        // or two, and a last small chunk would otherwise wait in the request's
        // buffer); then the handler works on past the timeout (ECHO_HOLD_MS).
        let stdin = testBytes(66000)
        try connection.write(
            Raw.begin(
                1, params: ["REQUEST_METHOD": "POST", "CONTENT_LENGTH": "66000", "ECHO_FLUSH": "1", "ECHO_HOLD_MS": "8000"])
                + Raw.stream(.stdin, 1, stdin, close: true))
        let reply = try connection.readResponse(requestID: 1)
        #expect(reply.header("Content-Type") == "application/octet-stream", "no 504 page after output")
        let same = reply.body == stdin
        #expect(same, "body: \(reply.body.count) of \(stdin.count) bytes")
        #expect(reply.endCount == 1)
        #expect(app.child.stderrText.contains("request timed out"))
    }

}
