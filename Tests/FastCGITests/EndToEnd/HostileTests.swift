import FastCGIClient
import FastCGIWire
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// SPEC §4/§5, issue 6: broken or hostile peers at every engine (levels 0 and 1 on
/// libfcgi workers, level 2 on the Swift engine). After each case the process is
/// alive, a normal request on a new connection succeeds, and its peak memory
/// (VmHWM) stays under a stated bound.
@Suite("Hostile peers: truncation, floods, idle crowds, lost clients", .serialized, .timeLimit(.minutes(10)))
struct HostileTests {
    static let levels = [0, 1, 2]

    /// The peak resident memory of `pid` in KiB (VmHWM from /proc).
    static func peakKiB(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
        return 0
    }

    /// The app is alive, serves a normal request on a new connection, and peaked
    /// under `boundMiB`.
    func expectHealthy(_ app: RunningApp, boundMiB: Int, _ what: String) throws {
        #expect(app.child.isRunning, "\(what): the app died")
        let reply = try app.send(.http(method: "POST", uri: "/?name=next", body: Array("name=body".utf8)))
        #expect(reply.protocolStatus == .requestComplete, "\(what): next request")
        #expect(!reply.body.isEmpty, "\(what): next request")
        let peak = Self.peakKiB(app.child.pid)
        // Under scripts/sanitize the apps carry ASan/TSan shadow memory: footprint
        // bounds do not apply there.
        guard ProcessInfo.processInfo.environment["SWIFT_FCGI_SANITIZER"] == nil else { return }
        #expect(peak > 0 && peak < boundMiB << 10, "\(what): VmHWM \(peak) KiB, bound \(boundMiB) MiB")
    }

    /// Reads until the app closes the connection; false if it stays open `timeout` s.
    func closes(_ connection: FastCGIConnection) -> Bool {
        while true {
            do {
                if try connection.readRecord() == nil { return true }
            } catch {
                return error.kind != .timeout
            }
        }
    }

    @Test("truncated and overrunning records: the connection closes, the app survives", arguments: levels)
    func truncated(level: Int) throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "\(level)", "--workers", "4"])
        var announced: [UInt8] = []
        RecordHeader(type: .stdin, requestID: 1, contentLength: 65535).encode(into: &announced)
        let cases: [(String, [UInt8])] = [
            ("a truncated header then close", [1, 1, 0]),
            (
                "a header announcing 65535 bytes, 1000 sent, then close",
                Raw.begin(1) + announced + [UInt8](repeating: 0x41, count: 1000)
            ),
            (
                "a name length that overruns the record",
                Record.beginRequest(requestID: 1, role: .responder, keepConnection: true).encoded
                    + Record(type: .params, requestID: 1, content: [200, 1] + Array("short".utf8)).encoded
                    + Record(type: .params, requestID: 1).encoded
            ),
            ("stdin for a request id never begun", Raw.stream(.stdin, 9, Array("who?".utf8))),
        ]
        for (name, bytes) in cases {
            let connection = try FastCGIConnection(to: app.address, timeout: .seconds(5))
            try? connection.write(bytes)
            connection.shutdownWrite()
            #expect(closes(connection), "\(name): the connection stayed open")
            try expectHealthy(app, boundMiB: 64, name)
        }
    }

    @Test("500 idle connections: connection 501 is served within 2 s", arguments: levels)
    func idleCrowd(level: Int) throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < 4096 {
            limit.rlim_cur = min(limit.rlim_max, 4096)
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        let app = try RunningApp("echo", arguments: ["--threading-level", "\(level)", "--workers", "4"])
        var idle: [FastCGIConnection] = []
        for i in 0..<500 {
            let connection = try FastCGIConnection(to: app.address, timeout: .seconds(5))
            // Half of them start a request and stall in its params: no worker is held.
            if i % 2 == 1 {
                try connection.write(Record.beginRequest(requestID: 1, role: .responder, keepConnection: true).encoded)
            }
            idle.append(connection)
        }
        let start = Date()
        let reply = try app.send(.http(uri: "/?n=501", extra: ["ECHO_PARAMS": "1"]))
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed < 2, "connection 501 waited \(elapsed) s")
        #expect(String(decoding: reply.body, as: UTF8.self).contains("QUERY_STRING=n=501\n"))
        // 500 connection threads: 256 KiB stacks and 64 KiB read buffers, mostly
        // untouched (about 20 KiB each measured).
        try expectHealthy(app, boundMiB: 64, "500 idle connections")
        let peak = Self.peakKiB(app.child.pid)
        print("level \(level): VmHWM with 500 idle connections: \(peak) KiB")
        for connection in idle { connection.close() }
    }

    @Test("a client that goes away during a 16 MiB response", arguments: levels)
    func clientLeavesDuringResponse(level: Int) throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "\(level)", "--workers", "4"])
        for _ in 0..<3 {
            let connection = try FastCGIConnection(to: app.address, timeout: .seconds(10))
            try connection.write(FastCGIRequest.http(extra: ["ECHO_PAGE": "\(16 << 20)"], keepConnection: true).encoded)
            var received = 0
            while received < 200_000 {
                guard let record = try connection.readRecord() else { break }
                received += record.content.count
            }
            #expect(received >= 200_000)
            connection.close()  // unread data in the socket: the kernel sends RST
        }
        try expectHealthy(app, boundMiB: 64, "client gone during a 16 MiB response")
    }

    @Test(
        "a handler that never reads a 100 MiB body (returning at once, or busy for 2 s)",
        arguments: levels, [false, true])
    func unreadHugeBody(level: Int, busy: Bool) throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "\(level)", "--workers", "4"])
        let connection = try FastCGIConnection(to: app.address, timeout: .seconds(30))
        let body = [UInt8](repeating: 0x5a, count: 100 << 20)
        // ECHO_PAGE answers without reading stdin; ECHO_SLEEP_MS keeps the handler
        // busy while the body arrives.
        var extra = ["ECHO_PAGE": "6"]
        if busy { extra["ECHO_SLEEP_MS"] = "2000" }
        // Either the reply (the body drained after the handler) or, where the
        // unread input outgrew its bound (level 2: 16 MiB), the request ended early.
        do {
            let reply = try connection.send(.http(method: "POST", body: body, extra: extra))
            #expect(reply.protocolStatus == .requestComplete)
            #expect(reply.body.isEmpty || reply.body == Array("<!DOCT".utf8), "\(reply.body.count) bytes")
        } catch {
            #expect(error.kind == .connectionClosed, "\(error)")
        }
        // What libfcgi or the Swift engine buffers is bounded (16 MiB unread input at
        // level 2), far below the body.
        try expectHealthy(app, boundMiB: 64, "100 MiB unread body")
        print("level \(level): VmHWM after a 100 MiB unread body: \(Self.peakKiB(app.child.pid)) KiB")
    }
}
