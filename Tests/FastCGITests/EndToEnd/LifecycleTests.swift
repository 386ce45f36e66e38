import FastCGIClient
import FastCGIWire
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// How the server starts and stops: maxRequests, exit(), signals, CGI fallback,
/// FCGI_WEB_SERVER_ADDRS, errors in handlers, peers that go away.
@Suite("Server lifecycle", .serialized, .timeLimit(.minutes(5)))
struct LifecycleTests {
    @Test("maxRequests = 3: run() returns after the third request", arguments: [0, 1, 2])
    func maxRequests(level: Int) throws {
        let app = try RunningApp("echo", arguments: ["--max-requests", "3", "--threading-level", "\(level)"])
        for i in 0..<3 {
            let reply = try app.send(.http(method: "POST", body: [UInt8(i)]))
            #expect(reply.body == [UInt8(i)])
            #expect(reply.protocolStatus == .requestComplete)
        }
        #expect(app.child.waitForExit(timeout: 10) == 0)
    }

    @Test("exit() from inside a handler stops the server", arguments: [0, 1, 2])
    func exitFromHandler(level: Int) throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "\(level)"])
        let reply = try app.send(.http(method: "POST", body: Array("bye".utf8), extra: ["ECHO_EXIT": "1"]))
        #expect(reply.body == Array("bye".utf8), "the request that called exit() still completes")
        #expect(app.child.waitForExit(timeout: 10) == 0)
    }

    @Test("SIGTERM stops the server while workers wait in accept", arguments: [0, 1, 2])
    func sigterm(level: Int) throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "\(level)"])
        _ = try app.send(.http())
        app.child.signal(SIGTERM)
        #expect(app.child.waitForExit(timeout: 10) == 0)
    }

    @Test("a clean stop removes the unix socket file the server made", arguments: [0, 1, 2])
    func socketFileRemoved(level: Int) throws {
        let app = try RunningApp("echo", unix: true, arguments: ["--threading-level", "\(level)"])
        let path = String(app.address.dropFirst("unix:".count))
        #expect(FileManager.default.fileExists(atPath: path))
        app.child.signal(SIGTERM)
        #expect(app.child.waitForExit(timeout: 10) == 0)
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test("a second instance on a live socket is refused and the first serves on; once it stops, a new one starts")
    func secondInstanceRefused() throws {
        let old = try RunningApp("echo", unix: true)
        let path = String(old.address.dropFirst("unix:".count))
        // A restart that starts the new instance first: refused, not a silent takeover
        // that would leave the old one running but unreachable.
        let newer = try ChildProcess(Paths.app("echo"), ["--bind", old.address], directory: try TempDirectory.make())
        #expect(newer.waitForExit(timeout: 20) == 1)
        #expect(newer.stderrText.contains("another process serves this socket"))
        #expect(try FastCGIConnection(to: old.address, timeout: .seconds(5)).send(.http(method: "POST", body: [4])).body == [4])
        old.child.signal(SIGTERM)
        #expect(old.child.waitForExit(timeout: 10) == 0)
        #expect(!FileManager.default.fileExists(atPath: path))
        let next = try ChildProcess(Paths.app("echo"), ["--bind", old.address], directory: try TempDirectory.make())
        defer { next.stop() }
        try Net.waitUntilListening(old.address)
        #expect(try FastCGIConnection(to: old.address, timeout: .seconds(5)).send(.http(method: "POST", body: [6])).body == [6])
    }

    @Test("SIGTERM/SIGINT with a request in flight: it completes, then run() returns", arguments: [0, 1, 2], [SIGTERM, SIGINT])
    func gracefulStop(level: Int, signal: Int32) throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "\(level)"])
        let connection = try FastCGIConnection(to: app.address, timeout: .seconds(10))
        try connection.write(FastCGIRequest.http(method: "POST", body: [5], extra: ["ECHO_SLEEP_MS": "1000"]).encoded)
        try app.waitForLog("echo: sleeping")
        let start = Date()
        app.child.signal(signal)
        try app.waitForLog("stopping: listener closed")
        // No new connections once stopping.
        #expect(throws: ClientError.self) { try FastCGIConnection(to: app.address, timeout: .seconds(2)).send(.http()) }
        #expect(try connection.readResponse().body == [5], "the request in flight completes")
        #expect(app.child.waitForExit(timeout: 10) == 0)
        let elapsed = Date().timeIntervalSince(start)
        print(
            "level \(level), signal \(signal): stopped \(String(format: "%.2f", elapsed)) s after the signal (request had 0.8 s to go)"
        )
        #expect(elapsed < 3)
    }

    @Test("a request past the shutdown timeout does not hold the stop", arguments: [1, 2])
    func shutdownTimeout(level: Int) throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "\(level)", "--shutdown-timeout", "1"])
        let connection = try FastCGIConnection(to: app.address, timeout: .seconds(10))
        try connection.write(FastCGIRequest.http(extra: ["ECHO_SLEEP_MS": "10000"]).encoded)
        try app.waitForLog("echo: sleeping")
        let start = Date()
        app.child.signal(SIGTERM)
        #expect(app.child.waitForExit(timeout: 8) == 0)
        let elapsed = Date().timeIntervalSince(start)
        print(
            "level \(level): stopped \(String(format: "%.2f", elapsed)) s after SIGTERM with a 10 s request and --shutdown-timeout 1"
        )
        #expect(elapsed < 4)
        #expect(app.child.stderrText.contains("shutdown timeout"))
    }

    @Test("a handler that throws gives the 500 page and logs to FCGI_STDERR")
    func throwingHandler() throws {
        let app = try RunningApp("echo")
        let reply = try app.send(.http(extra: ["ECHO_THROW": "1"]))
        #expect(reply.header("Status") == "500 Internal Server Error")
        #expect(String(decoding: reply.body, as: UTF8.self).contains("<h1>Internal Server Error</h1>"))
        #expect(!String(decoding: reply.body, as: UTF8.self).contains("ECHO_THROW"), "no detail without DebugHandler")
        #expect(String(decoding: reply.stderr, as: UTF8.self).contains("echo was asked to fail (ECHO_THROW=1)"))
        // The app goes on serving.
        #expect(try app.send(.http(method: "POST", body: [42])).body == [42])
    }

    @Test("CGI fallback: run as a plain CGI program")
    func cgiFallback() throws {
        let directory = try TempDirectory.make()
        let bodyURL = directory.appendingPathComponent("body")
        try Data("posted=1".utf8).write(to: bodyURL)
        let result = try ChildProcess.run(
            Paths.app("echo"), [],
            environment: ["REQUEST_METHOD": "POST", "CONTENT_LENGTH": "8", "GATEWAY_INTERFACE": "CGI/1.1"],
            stdin: bodyURL)
        #expect(result.status == 0)
        #expect(String(decoding: result.stdout, as: UTF8.self) == "Content-Type: application/octet-stream\r\n\r\nposted=1")

        let hello = try ChildProcess.run(
            Paths.app("hello"), [], environment: ["REQUEST_METHOD": "GET", "QUERY_STRING": "name=CGI"])
        #expect(String(decoding: hello.stdout, as: UTF8.self).hasSuffix("\r\n\r\nHello, CGI!\n"))
    }

    @Test(
        "CGI: a web server that writes the whole body before it reads (mod_cgi) gets an echo of 300 KB, no deadlock",
        .timeLimit(.minutes(1)))
    func cgiHoldsOutputUntilTheBodyEnds() throws {
        let body = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Paths.app("echo"))
        process.environment = [
            "REQUEST_METHOD": "POST", "CONTENT_LENGTH": "\(body.count)", "CONTENT_TYPE": "application/octet-stream",
            "GATEWAY_INTERFACE": "CGI/1.1",
        ]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        // As Apache's mod_cgi: the whole body first, and only then the answer.
        let written = DispatchSemaphore(value: 0)
        Thread {
            input.fileHandleForWriting.write(Data(body))
            try? input.fileHandleForWriting.close()
            written.signal()
        }.start()
        #expect(written.wait(timeout: .now() + 20) == .success, "the app stopped reading its body: a deadlock")
        let answer = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = Array(answer)
        let split = CGIResponseSplit(text)
        #expect(split.body == body)
    }

    @Test("CGI fallback honours CONTENT_LENGTH and reports handler errors on stderr")
    func cgiErrors() throws {
        let directory = try TempDirectory.make()
        let bodyURL = directory.appendingPathComponent("body")
        try Data("0123456789".utf8).write(to: bodyURL)
        let short = try ChildProcess.run(
            Paths.app("echo"), [], environment: ["REQUEST_METHOD": "POST", "CONTENT_LENGTH": "4"], stdin: bodyURL)
        #expect(String(decoding: short.stdout, as: UTF8.self).hasSuffix("\r\n\r\n0123"))
        let failing = try ChildProcess.run(Paths.app("echo"), [], environment: ["ECHO_THROW": "1"], stdin: bodyURL)
        #expect(String(decoding: failing.stdout, as: UTF8.self).hasPrefix("Status: 500 Internal Server Error\r\n"))
        #expect(failing.stderr.contains("echo was asked to fail"))
    }

    @Test("FCGI_WEB_SERVER_ADDRS: a peer not listed is refused, a listed one served")
    func webServerAddrs() throws {
        let refused = try RunningApp("echo", environment: ["FCGI_WEB_SERVER_ADDRS": "10.9.8.7"])
        #expect(throws: ClientError.self) { try refused.send(.http()) }
        let allowed = try RunningApp("echo", environment: ["FCGI_WEB_SERVER_ADDRS": "10.9.8.7,127.0.0.1"])
        #expect(try allowed.send(.http(method: "POST", body: [7])).body == [7])
    }

    @Test("a client that goes away mid-response does not kill the app (no SIGPIPE)")
    func peerGoesAway() throws {
        let app = try RunningApp("echo", arguments: ["--workers", "2"])
        for _ in 0..<3 {
            let connection = try FastCGIConnection(to: app.address)
            try connection.write(FastCGIRequest.http(method: "POST", body: testBytes(4 << 20)))
            _ = try connection.readRecord()
            connection.close()
        }
        usleep(200_000)
        #expect(app.child.isRunning)
        #expect(try app.send(.http(method: "POST", body: [9])).body == [9])
    }
}

/// A CGI answer split at the blank line after its headers.
struct CGIResponseSplit {
    let body: [UInt8]
    init(_ bytes: [UInt8]) {
        let crlf: [UInt8] = [13, 10, 13, 10]
        let lf: [UInt8] = [10, 10]
        if let end = bytes.firstRange(of: crlf) {
            body = Array(bytes[end.upperBound...])
        } else if let end = bytes.firstRange(of: lf) {
            body = Array(bytes[end.upperBound...])
        } else {
            body = []
        }
    }
}
