import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The apps as Apache's scripts: mod_fcgid `AddHandler fcgid-script .fcgi`
/// (Apache keeps the processes) and CGI through `ScriptAlias`, from
/// scripts/apache2-scripts.conf.in. Routes match under the script's URL
/// (`request.pathInfo`), a 2 MB upload passes mod_fcgid's raised
/// `FcgidMaxRequestLen`, and CGI echoes a body larger than its pipes.
@Suite("Apache: mod_fcgid and CGI scripts", .serialized, .timeLimit(.minutes(3)))
final class ApacheScriptTests: HTTPFrontEnd, @unchecked Sendable {
    let child: ChildProcess
    let port: UInt16
    let prefix: URL
    private let configPath: String
    var url: String { "http://127.0.0.1:\(port)" }

    init() throws {
        prefix = try TempDirectory.make()
        port = Net.freePort()  // Apache takes no port 0
        let www = prefix.appendingPathComponent("www")
        let manager = FileManager.default
        for directory in ["fcgid", "cgi-bin"] {
            try manager.createDirectory(at: www.appendingPathComponent(directory), withIntermediateDirectories: true)
        }
        for (app, path) in [
            ("guestbook", "fcgid/guestbook.fcgi"), ("echo", "fcgid/echo.fcgi"), ("guestbook", "cgi-bin/guestbook"),
            ("echo", "cgi-bin/echo"),
        ] {
            try manager.copyItem(atPath: Paths.app(app), toPath: www.appendingPathComponent(path).path)
        }
        // Apache's children (www-data, under root) write mod_fcgid's sockets here.
        let ipc = prefix.appendingPathComponent("fcgid")
        try manager.createDirectory(at: ipc, withIntermediateDirectories: true)
        chmod(ipc.path, 0o777)
        for directory in [prefix, www] { chmod(directory.path, 0o755) }
        let config = try fillTemplate(
            "scripts/apache2-scripts.conf.in", into: prefix.appendingPathComponent("httpd.conf"),
            [
                "@PREFIX@": prefix.path, "@PORT@": "\(port)",
                "@USER_LINES@": getuid() == 0 ? "User www-data\nGroup www-data" : "",
            ])
        configPath = config.path
        child = try ChildProcess("apache2", ["-DFOREGROUND", "-f", config.path], directory: prefix)
        try Net.waitUntilHTTP(port: port)
    }

    deinit {
        child.stop()
        _ = try? ChildProcess.run("pkill", ["-KILL", "-f", configPath], timeout: 10)
        // mod_fcgid's apps (the scripts under the prefix) outlive a process
        // manager killed before it could stop them.
        _ = try? ChildProcess.run("pkill", ["-KILL", "-f", prefix.appendingPathComponent("www").path], timeout: 10)
    }

    var errorLog: String { (try? String(contentsOf: prefix.appendingPathComponent("error.log"), encoding: .utf8)) ?? "" }

    @Test(
        "routes written as / match under the script's URL, mod_fcgid and CGI",
        arguments: ["/fcgid/guestbook.fcgi", "/cgi-bin/guestbook"])
    func routes(script: String) throws {
        let home = try curl(script)
        #expect(home.code == 200, "\(errorLog)")
        #expect(String(decoding: home.body, as: UTF8.self).contains("<form"))
        #expect(try curl(script + "/").code == 200)
        let entries = try curl(script + "/entries.json")
        #expect(entries.code == 200 && String(decoding: entries.body, as: UTF8.self).hasPrefix("["))
        #expect(try curl(script + "/no/such/page").code == 404)
    }

    @Test("a 2 MB upload through mod_fcgid (FcgidMaxRequestLen raised), and 300 KB through CGI, echoed whole")
    func uploads() throws {
        for (script, size) in [("/fcgid/echo.fcgi", 2_000_000), ("/cgi-bin/echo", 300_000)] {
            let bytes = Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            let file = prefix.appendingPathComponent("upload-\(size)")
            try bytes.write(to: file)
            let echoed = try curl(script, body: file)
            #expect(echoed.code == 200, "\(script): \(errorLog)")
            #expect(echoed.body == bytes, "\(script): \(echoed.body.count) bytes back of \(size)")
        }
    }
}
