import FastCGIClient
import Foundation
import Testing

/// The `fcgi` command-line tool against the Swift examples and the C reference.
@Suite("fcgi command-line tool", .serialized, .timeLimit(.minutes(5)))
struct CLITests {
    let fcgi = Paths.app("fcgi")

    @Test("request: body from stdin, -p params, --include like curl -i", arguments: ["echo", "reference-echo"])
    func request(app name: String) throws {
        let app = try RunningApp(name)
        let directory = try TempDirectory.make()
        let body = directory.appendingPathComponent("body")
        try Data("posted bytes".utf8).write(to: body)
        let echoed = try ChildProcess.run(fcgi, ["request", app.address, "--method", "POST", "--include"], stdin: body)
        #expect(echoed.status == 0)
        #expect(
            String(decoding: echoed.stdout, as: UTF8.self)
                == "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\nposted bytes")

        let params = try ChildProcess.run(
            fcgi, ["request", app.address, "-p", "ECHO_PARAMS=1", "-p", "X_ONE=1", "--uri", "/a?b=c"])
        let lines = String(decoding: params.stdout, as: UTF8.self).split(separator: "\n").map(String.init)
        #expect(lines.contains("X_ONE=1"))
        #expect(lines.contains("QUERY_STRING=b=c"))
        #expect(lines.contains("REQUEST_URI=/a?b=c"))
    }

    @Test("request --fail: exit 22 on a 4xx/5xx status, as curl --fail; 0 otherwise")
    func requestFail() throws {
        let app = try RunningApp("echo")
        let fcgi = Paths.app("fcgi")
        let failed = try ChildProcess.run(fcgi, ["request", app.address, "--fail", "-p", "ECHO_THROW=1"])
        #expect(failed.status == 22)
        #expect(failed.stderr.contains("500 Internal Server Error"))
        #expect(String(decoding: failed.stdout, as: UTF8.self).contains("Internal Server Error"))
        #expect(try ChildProcess.run(fcgi, ["request", app.address, "--fail"]).status == 0)
        #expect(try ChildProcess.run(fcgi, ["request", app.address, "-p", "ECHO_THROW=1"]).status == 0)
    }

    @Test("request --role authorizer and filter --data")
    func roles() throws {
        let app = try RunningApp("echo")
        let denied = try ChildProcess.run(fcgi, ["request", app.address, "--role", "authorizer", "-i"])
        #expect(String(decoding: denied.stdout, as: UTF8.self).hasPrefix("HTTP/1.1 403\r\n"))
        let directory = try TempDirectory.make()
        let data = directory.appendingPathComponent("data")
        try Data("DATA".utf8).write(to: data)
        let filtered = try ChildProcess.run(fcgi, ["request", app.address, "--role", "filter", "--data", data.path])
        #expect(String(decoding: filtered.stdout, as: UTF8.self) == "DATA")
    }

    @Test("get-values prints the answers")
    func getValues() throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "2", "--workers", "6"])
        let result = try ChildProcess.run(fcgi, ["get-values", app.address])
        #expect(result.status == 0)
        #expect(String(decoding: result.stdout, as: UTF8.self) == "FCGI_MAX_CONNS=6\nFCGI_MAX_REQS=6\nFCGI_MPXS_CONNS=1\n")
    }

    @Test("bench drives an app and reports requests/s, latency and errors", arguments: ["echo", "reference-echo"])
    func bench(app name: String) throws {
        let app = try RunningApp(name)
        let result = try ChildProcess.run(fcgi, ["bench", app.address, "-c", "2", "-d", "1", "-k", "-b", "100", "--machine"])
        #expect(result.status == 0)
        let fields = String(decoding: result.stdout, as: UTF8.self).split(separator: " ").map {
            String($0).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(fields.count == 7, "rps p50 p99 errors requests retried max")
        #expect((Double(fields[0]) ?? 0) > 50, "req/s")
        #expect(fields[3] == "0", "errors")
        let human = try ChildProcess.run(fcgi, ["bench", app.address, "-c", "1", "-d", "0.5"])
        #expect(String(decoding: human.stdout, as: UTF8.self).contains("requests/s:"))
    }

    @Test("multiplexed bench against level 2")
    func benchMultiplexed() throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "2"])
        let result = try ChildProcess.run(fcgi, ["bench", app.address, "-c", "2", "-m", "8", "-k", "-d", "1", "--machine"])
        let fields = String(decoding: result.stdout, as: UTF8.self).split(separator: " ")
        #expect(result.status == 0 && fields.count == 7 && fields[3] == "0")
    }

    @Test("ping: 0 for the expected answer; 1 for another; 5 at the deadline; 4 refused")
    func ping() throws {
        let app = try RunningApp("echo", arguments: ["--ping-path", "/health"])
        let ok = try ChildProcess.run(fcgi, ["ping", app.address, "--path", "/health"])
        #expect(ok.status == 0 && String(decoding: ok.stdout, as: UTF8.self) == "pong\n")
        let wrong = try ChildProcess.run(fcgi, ["ping", app.address, "--path", "/other"])
        #expect(wrong.status == 1)
        #expect(wrong.stderr.contains("expected \"pong\""))
        let silent = Net.silentListener()
        defer { close(silent.fd) }
        let started = Date()
        let hung = try ChildProcess.run(fcgi, ["ping", silent.address, "--timeout", "0.5"])
        #expect(hung.status == 5)
        #expect(hung.stderr.contains("within 0.5 s"), "\(hung.stderr)")
        #expect(Date().timeIntervalSince(started) < 10)
        let closed = Net.refusingAddress()
        defer { close(closed.fd) }
        #expect(try ChildProcess.run(fcgi, ["ping", closed.address]).status == 4)
    }

    @Test("clear messages and exit codes: bad address, refused, timeout, not FastCGI")
    func failures() throws {
        let bad = try ChildProcess.run(fcgi, ["request", "nonsense"])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("expected host:port"))

        let closed = Net.refusingAddress()
        defer { close(closed.fd) }
        let refused = try ChildProcess.run(fcgi, ["get-values", closed.address])
        #expect(refused.status == 4)
        #expect(refused.stderr.contains("cannot connect"))

        // libfcgi does not answer a lone GET_VALUES: a timeout.
        let reference = try RunningApp("reference-echo")
        let slow = try ChildProcess.run(fcgi, ["get-values", reference.address, "--timeout", "0.5"])
        #expect(slow.status == 5)
        #expect(slow.stderr.contains("no reply within"))

        // An HTTP server is not a FastCGI app.
        let app = try RunningApp("hello")
        let nginx = try RunningNginx(upstream: app.address)
        let http = try ChildProcess.run(fcgi, ["request", "127.0.0.1:\(nginx.port)", "--timeout", "3"])
        #expect(http.status == 6)
        #expect(http.stderr.contains("invalid FastCGI"))
    }
}
