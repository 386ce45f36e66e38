import FastCGIClient
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Who can reach the app (SPEC §8): a unix socket with the mode and group asked
/// for, and a warning when a TCP port is reachable from other machines with no
/// FCGI_WEB_SERVER_ADDRS.
@Suite("Exposure: socket permissions, the open-port warning", .serialized, .timeLimit(.minutes(2)))
struct ExposureTests {
    static let warning = "reachable from other machines and FCGI_WEB_SERVER_ADDRS is not set"

    /// A group to give the socket: www-data where it exists (nginx's and Apache's
    /// on Debian), else the test's own.
    static var group: (name: String, id: gid_t) {
        if let entry = getgrnam("www-data") { return ("www-data", entry.pointee.gr_gid) }
        return ("\(getgid())", getgid())
    }

    @Test("--socket-mode and --socket-group set the unix socket's mode and group", arguments: [0, 1, 2])
    func socketPermissions(level: Int) throws {
        let group = Self.group
        let app = try RunningApp(
            "echo", unix: true,
            arguments: ["--threading-level", "\(level)", "--socket-mode", "0660", "--socket-group", group.name])
        let path = String(app.address.dropFirst("unix:".count))
        var info = stat()
        #expect(stat(path, &info) == 0)
        #expect(info.st_mode & 0o7777 == 0o660)
        #expect(info.st_gid == group.id)
        #expect(try app.send(.http(method: "POST", body: [1, 2, 3])).body == [1, 2, 3])
    }

    @Test("a bad --socket-mode or an unknown group is a clear error, not a running server")
    func badPermissions() throws {
        let directory = try TempDirectory.make()
        let mode = try ChildProcess.run(
            Paths.app("echo"), ["--bind", "unix:\(directory.path)/a.sock", "--socket-mode", "rw-rw----"], timeout: 10)
        #expect(mode.status != 0)
        #expect(mode.stderr.contains("expected an octal mode"))
        let group = try ChildProcess.run(
            Paths.app("echo"), ["--bind", "unix:\(directory.path)/b.sock", "--socket-group", "no-such-group-here"],
            timeout: 10)
        #expect(group.status != 0)
        #expect(group.stderr.contains("no such group"))
    }

    /// Waits (bounded) until the app has logged that it serves, then its log.
    func startupLog(_ app: RunningApp) throws -> String {
        _ = try app.send(.http())
        return app.child.stderrText
    }

    @Test("0.0.0.0 without FCGI_WEB_SERVER_ADDRS: a warning that names the risk and the fix")
    func exposedWarns() throws {
        let app = try RunningApp(echoBoundTo: "0.0.0.0")
        let log = try startupLog(app)
        #expect(log.contains(Self.warning))
        #expect(log.contains("Set FCGI_WEB_SERVER_ADDRS"))
    }

    @Test("no warning on 127.0.0.1, or with FCGI_WEB_SERVER_ADDRS set")
    func localOrListedIsQuiet() throws {
        let local = try RunningApp("echo")
        #expect(!(try startupLog(local)).contains(Self.warning))
        var environment = ProcessInfo.processInfo.environment
        environment["FCGI_WEB_SERVER_ADDRS"] = "127.0.0.1"
        let listed = try RunningApp(echoBoundTo: "0.0.0.0", environment: environment)
        #expect(!(try startupLog(listed)).contains(Self.warning))
    }

    @Test("httpoxy: params never enter the process environment (a Proxy: header is not a proxy)", arguments: [0, 1, 2])
    func paramsStayOutOfTheEnvironment(level: Int) throws {
        var environment = ProcessInfo.processInfo.environment
        for name in ["HTTP_PROXY", "http_proxy", "HTTP_X_SECRET"] { environment[name] = nil }
        let app = try RunningApp("echo", arguments: ["--threading-level", "\(level)"], environment: environment)
        let reply = try app.send(
            .http(extra: ["HTTP_PROXY": "http://attacker.invalid:8080", "HTTP_X_SECRET": "s3cret", "ECHO_PARAM": "HTTP_PROXY"]))
        // The handler sees the param, as a param...
        #expect(reply.body == Array("http://attacker.invalid:8080".utf8))
        // ...and the process's environment never holds it.
        let raw = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(app.child.pid)/environ"))
        let names = raw.split(separator: 0).map { String(decoding: $0.prefix { $0 != UInt8(ascii: "=") }, as: UTF8.self) }
        #expect(!names.isEmpty)
        #expect(!names.contains("HTTP_PROXY") && !names.contains("HTTP_X_SECRET"))
    }
}
