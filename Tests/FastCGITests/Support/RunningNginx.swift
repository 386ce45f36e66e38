import Foundation

/// A real nginx on 127.0.0.1 in front of an app, configured from
/// `scripts/nginx.conf.in` (the same file `scripts/demo` uses), stopped when released.
final class RunningNginx: HTTPFrontEnd, @unchecked Sendable {
    let child: ChildProcess
    let port: UInt16
    let prefix: URL

    init(upstream: String) throws {
        prefix = try TempDirectory.make()
        port = Net.freePort()
        let configURL = try fillTemplate(
            "scripts/nginx.conf.in", into: prefix.appendingPathComponent("nginx.conf"),
            [
                "@PREFIX@": prefix.path, "@PORT@": "\(port)", "@UPSTREAM@": upstream,
                "@USER_LINE@": getuid() == 0 ? "user root;" : "",
            ])
        child = try ChildProcess("nginx", ["-p", prefix.path, "-c", configURL.path], directory: prefix)
        try Net.waitUntilHTTP(port: port)
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// nginx's error log (where FCGI_STDERR output lands).
    var errorLog: String {
        (try? String(contentsOf: prefix.appendingPathComponent("error.log"), encoding: .utf8)) ?? ""
    }
}
