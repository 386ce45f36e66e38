import FastCGIClient
import FastCGIWire
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 31, points 1 and 2: a stop is visible at once and loses nothing. The
/// listener closes the moment the stop begins (a web server is refused and
/// fails over), requests in flight finish, a kept connection closes with the
/// END_REQUEST of its last request (so nginx never reuses it), and a request
/// that reaches an open connection meanwhile is answered.
@Suite("Drain: the listener closes at once, nothing in flight is lost", .serialized, .timeLimit(.minutes(5)))
struct DrainTests {
    /// Whether a connect to `address` is refused now (the listener is gone).
    static func refused(_ address: String) -> Bool {
        do {
            let probe = try FastCGIConnection(to: address, timeout: .seconds(2))
            probe.close()
            return false
        } catch {
            return true
        }
    }

    @Test("SIGTERM: connects are refused at once while the request in flight finishes", arguments: [0, 1, 2], [false, true])
    func listenerClosedAtOnce(level: Int, unix: Bool) throws {
        let app = try RunningApp("echo", unix: unix, arguments: ["--threading-level", "\(level)"])
        let busy = try FastCGIConnection(to: app.address, timeout: .seconds(10))
        try busy.write(FastCGIRequest.http(method: "POST", body: [7], extra: ["ECHO_SLEEP_MS": "1500"]).encoded)
        try app.waitForLog("echo: sleeping")  // the request reached its handler
        app.child.signal(SIGTERM)
        #expect(ProcessManagerTests.eventually(5) { Self.refused(app.address) }, "level \(level): still accepting")
        let log = app.child.stderrText
        #expect(log.contains("stopping: listener closed"), "\(log.suffix(400))")
        // The request in flight is answered all the same.
        let reply = try busy.readResponse()
        #expect(reply.body == [7])
        #expect(reply.protocolStatus == .requestComplete)
        #expect(app.child.waitForExit(timeout: 10) == 0)
        #expect(app.child.stderrText.contains("stopped: every request finished"))
    }

    @Test("a kept connection brings a request during the drain: answered, then closed with its end", arguments: [0, 1, 2])
    func keptConnectionClosesWithItsEnd(level: Int) throws {
        let app = try RunningApp("echo", unix: true, arguments: ["--threading-level", "\(level)"])
        let kept = try FastCGIConnection(to: app.address, timeout: .seconds(10))
        #expect(try kept.send(.http(method: "POST", body: [1], keepConnection: true)).body == [1])
        // Something in flight keeps the process draining.
        let busy = try FastCGIConnection(to: app.address, timeout: .seconds(10))
        try busy.write(FastCGIRequest.http(extra: ["ECHO_SLEEP_MS": "1500"]).encoded)
        try app.waitForLog("echo: sleeping")
        app.child.signal(SIGTERM)
        #expect(ProcessManagerTests.eventually(5) { Self.refused(app.address) })
        // nginx reusing its kept connection right now: served, not refused...
        let reply = try kept.send(.http(method: "POST", body: [2], keepConnection: true))
        #expect(reply.body == [2], "level \(level)")
        #expect(reply.protocolStatus == .requestComplete)
        // ...and the connection ends right after END_REQUEST.
        #expect(try kept.readRecord() == nil, "level \(level): the kept connection stayed open")
        _ = try busy.readResponse()
        #expect(app.child.waitForExit(timeout: 10) == 0)
    }

    @Test("a quiet kept connection is closed once the grace is over, and the process exits")
    func quietKeptConnectionClosed() throws {
        let app = try RunningApp("echo", unix: true)
        let kept = try FastCGIConnection(to: app.address, timeout: .seconds(10))
        #expect(try kept.send(.http(method: "POST", body: [1], keepConnection: true)).body == [1])
        app.child.signal(SIGTERM)
        #expect(try kept.readRecord() == nil)
        #expect(app.child.waitForExit(timeout: 10) == 0)
    }
}

/// The same through a real nginx with kept upstream connections, under load
/// from ab (which never retries), GET and POST: a graceful stop of one of two
/// instances, a reload and a recycle of a process manager's workers.
///
/// What remains: a kept connection closes with its last END_REQUEST, the FIN
/// sent right after it. When nginx takes the END before the FIN arrives, it
/// keeps the connection and may send the next request on it within
/// microseconds; nginx retries that request elsewhere if it is a GET, not if it
/// is a POST. Measured here: 0 to 8 failed POSTs per 58 recycles of 500
/// requests under 8 concurrent clients (9 in 290 on a quiet machine, 8 in 58
/// during a full CI run); the tests bound it at a third of the drains, and
/// GETs at none.
@Suite("Drain behind nginx keepalive under load", .serialized, .timeLimit(.minutes(5)))
struct DrainUnderLoadTests {
    /// ab's verdict: requests completed, failed, and answered other than 2xx.
    struct Load {
        let child: ChildProcess
        let output: URL

        init(_ nginx: RunningNginx, method: String, requests: Int) throws {
            let body = nginx.prefix.appendingPathComponent("post-body")
            try Data(testBytes(1000)).write(to: body)
            output = nginx.prefix.appendingPathComponent("ab.out")
            let post = method == "POST" ? "-p \(body.path) -T application/octet-stream" : ""
            child = try ChildProcess(
                "sh", ["-c", "ab -q -k -c 8 -n \(requests) -s 20 \(post) \(nginx.url)/drain > \(output.path) 2>&1"])
        }

        /// Waits for ab to end; its figures.
        func finish() throws -> (complete: Int, failed: Int, non2xx: Int, text: String) {
            guard child.waitForExit(timeout: 120) != nil else { throw TestFailure("ab did not finish") }
            let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
            func figure(_ label: String) -> Int {
                let line = text.split(separator: "\n").first { $0.hasPrefix(label) }
                return line.flatMap { Int($0.dropFirst(label.count).trimmingCharacters(in: .whitespaces)) } ?? 0
            }
            return (figure("Complete requests:"), figure("Failed requests:"), figure("Non-2xx responses:"), text)
        }
    }

    static func served(_ address: String) -> Int {
        (try? ProcessManagerTests.status(address)["requests served"] as? Int) ?? 0
    }

    /// nginx's error-log lines at error level or worse, but for the race above
    /// and a refused connect to a stopped instance.
    static func unexpectedErrors(_ nginx: RunningNginx) -> [Substring] {
        nginx.errorLog.split(separator: "\n").filter {
            ($0.contains("[error]") || $0.contains("[crit]") || $0.contains("[alert]"))
                && !$0.contains("upstream prematurely closed connection while reading response header")
                && !$0.contains("failed (32: Broken pipe) while sending request to upstream")
                && !$0.contains("connect() to unix:")
        }
    }

    /// The most POSTs the race may fail across `drains` drains.
    static func bound(drains: Int) -> Int { drains / 3 + 2 }

    @Test("SIGTERM to one of two instances mid-load: no GET fails, POSTs within the bound", arguments: ["GET", "POST"])
    func gracefulStopWithSecondInstance(method: String) throws {
        let a = try RunningApp("echo", unix: true, arguments: ["--status-path", "/status"])
        let b = try RunningApp("echo", unix: true, arguments: ["--status-path", "/status"])
        let nginx = try RunningNginx(upstreams: [a.address, b.address])
        let load = try Load(nginx, method: method, requests: 30000)
        #expect(ProcessManagerTests.eventually(30) { Self.served(a.address) >= 500 })
        a.child.signal(SIGTERM)
        #expect(a.child.waitForExit(timeout: 15) == 0)
        #expect(load.child.isRunning, "the stop came after the load: make the load longer")
        let result = try load.finish()
        #expect(result.complete == 30000, "\(result.text.suffix(800))")
        #expect(result.failed == result.non2xx, "\(result.text.suffix(800))")
        #expect(result.failed <= (method == "GET" ? 0 : Self.bound(drains: 1)), "\(method): \(result.failed) failed")
        #expect(Self.unexpectedErrors(nginx).isEmpty, "\(Self.unexpectedErrors(nginx).prefix(3))")
        print("graceful stop of 1 of 2, \(method): \(result.failed) failed of 30000")
    }

    @Test(
        "a reload (SIGHUP) and recycling (--max-requests 500) under load: no GET fails, POSTs within the bound",
        arguments: ["reload", "recycle"], ["GET", "POST"])
    func reloadAndRecycle(what: String, method: String) throws {
        var arguments = ["--processes", "2", "--status-path", "/status"]
        if what == "recycle" { arguments += ["--max-requests", "500"] }
        let app = try RunningApp("echo", unix: true, arguments: arguments)
        let nginx = try RunningNginx(upstream: app.address)
        let load = try Load(nginx, method: method, requests: 30000)
        if what == "reload" {
            #expect(ProcessManagerTests.eventually(30) { nginx.accessLogLines >= 1000 })
            app.child.signal(SIGHUP)
            #expect(ProcessManagerTests.eventually(30) { app.child.stderrText.contains("generation 2 serves") })
            #expect(load.child.isRunning, "the reload came after the load: make the load longer")
        }
        let result = try load.finish()
        let drains = app.child.stderrText.components(separatedBy: "stopping: listener closed").count - 1
        #expect(result.complete == 30000, "\(what): \(result.text.suffix(800))")
        #expect(result.failed == result.non2xx, "\(what): \(result.text.suffix(800))")
        #expect(
            result.failed <= (method == "GET" ? 0 : Self.bound(drains: drains)),
            "\(what) \(method): \(result.failed) failed in \(drains) drains")
        #expect(Self.unexpectedErrors(nginx).isEmpty, "\(what): \(Self.unexpectedErrors(nginx).prefix(3))")
        if what == "recycle" { #expect(drains >= 10, "\(drains) workers recycled during the load") }
        print("\(what), \(method): \(result.failed) failed of 30000 in \(drains) drains")
    }
}

extension RunningNginx {
    /// Lines in nginx's access log (one per request answered).
    var accessLogLines: Int {
        ((try? String(contentsOf: prefix.appendingPathComponent("access.log"), encoding: .utf8)) ?? "")
            .split(separator: "\n").count
    }
}
