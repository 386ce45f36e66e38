import Foundation

/// A real nginx on 127.0.0.1 in front of an app, configured from
/// `scripts/nginx.conf.in` (the same file `scripts/demo` uses), stopped when released.
final class RunningNginx: @unchecked Sendable {
    let child: ChildProcess
    let port: UInt16
    let prefix: URL

    init(upstream: String) throws {
        prefix = try TempDirectory.make()
        port = Net.freePort()
        let template = try String(
            contentsOf: Paths.repository.appendingPathComponent("scripts/nginx.conf.in"), encoding: .utf8)
        let config = template
            .replacingOccurrences(of: "@PREFIX@", with: prefix.path)
            .replacingOccurrences(of: "@PORT@", with: "\(port)")
            .replacingOccurrences(of: "@UPSTREAM@", with: upstream)
            .replacingOccurrences(of: "@USER_LINE@", with: getuid() == 0 ? "user root;" : "")
        let configURL = prefix.appendingPathComponent("nginx.conf")
        try config.write(to: configURL, atomically: true, encoding: .utf8)
        child = try ChildProcess("nginx", ["-p", prefix.path, "-c", configURL.path], directory: prefix)
        try Net.waitUntilHTTP(port: port)
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// nginx's error log (where FCGI_STDERR output lands).
    var errorLog: String {
        (try? String(contentsOf: prefix.appendingPathComponent("error.log"), encoding: .utf8)) ?? ""
    }

    /// Runs curl against this nginx; returns status code and body.
    func curl(_ path: String, _ extra: [String] = [], body: URL? = nil) throws -> (code: Int, body: Data) {
        let out = prefix.appendingPathComponent("curl-\(UUID().uuidString.prefix(8))")
        var arguments = ["-s", "-o", out.path, "-w", "%{http_code}"] + extra
        if let body { arguments += ["--data-binary", "@\(body.path)", "-H", "Content-Type: application/octet-stream"] }
        arguments.append(url + path)
        let result = try ChildProcess.run("curl", arguments, timeout: 60)
        guard result.status == 0 else { throw TestFailure("curl \(path) failed: \(result.stderr)") }
        let code = Int(String(decoding: result.stdout, as: UTF8.self)) ?? 0
        return (code, (try? Data(contentsOf: out)) ?? Data())
    }
}
