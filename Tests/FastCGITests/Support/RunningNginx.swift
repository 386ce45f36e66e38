import Foundation

/// A real nginx on 127.0.0.1 in front of an app, configured from
/// `scripts/nginx.conf.in` (the same file `scripts/demo` uses), stopped when released.
final class RunningNginx: HTTPFrontEnd, @unchecked Sendable {
    let child: ChildProcess
    let port: UInt16
    let prefix: URL

    /// nginx in front of one app (scripts/nginx.conf.in); `unbuffered`: with
    /// `fastcgi_request_buffering off` and `fastcgi_buffering off`, so slow
    /// clients reach the app as they are.
    /// `files`: the directory of `location /protected-files/` (X-Accel-Redirect).
    convenience init(upstream: String, unbuffered: Bool = false, files: String? = nil) throws {
        var values = ["@UPSTREAM@": upstream]
        if let files { values["@FILES@"] = files }
        if unbuffered {
            values["fastcgi_keep_conn on;"] =
                "fastcgi_keep_conn on;\n            fastcgi_request_buffering off;\n            fastcgi_buffering off;"
        }
        try self.init(template: "scripts/nginx.conf.in", values)
    }

    /// nginx with an `upstream` of several instances (scripts/nginx-pool.conf.in):
    /// least_conn, kept connections, passive fail-over to the next instance.
    convenience init(upstreams: [String]) throws {
        let servers = upstreams.map { "        server \($0) max_fails=1 fail_timeout=10s;" }.joined(separator: "\n")
        try self.init(template: "scripts/nginx-pool.conf.in", ["@SERVERS@": servers])
    }

    private init(template: String, _ values: [String: String]) throws {
        prefix = try TempDirectory.make()
        port = Net.freePort()
        let configURL = try fillTemplate(
            template, into: prefix.appendingPathComponent("nginx.conf"),
            values.merging(
                [
                    "@PREFIX@": prefix.path, "@PORT@": "\(port)", "@USER_LINE@": getuid() == 0 ? "user root;" : "",
                    "@FILES@": prefix.appendingPathComponent("files").path,
                ]
            ) { old, _ in old })
        child = try ChildProcess("nginx", ["-p", prefix.path, "-c", configURL.path], directory: prefix)
        try Net.waitUntilHTTP(port: port)
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// nginx's error log (where FCGI_STDERR output lands).
    var errorLog: String {
        (try? String(contentsOf: prefix.appendingPathComponent("error.log"), encoding: .utf8)) ?? ""
    }
}
