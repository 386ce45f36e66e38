import Foundation

/// A real HAProxy on 127.0.0.1 in front of an app, configured from
/// `scripts/haproxy.cfg.in`, stopped when released.
final class RunningHAProxy: HTTPFrontEnd, @unchecked Sendable {
    let child: ChildProcess
    let port: UInt16
    let prefix: URL

    /// HAProxy in front of `upstream`, checking its ping page every
    /// `checkInterval` (each check is a connection of its own: the default keeps
    /// them out of the way of tests that count connections).
    convenience init(upstream: String, checkInterval: String = "60s") throws {
        try self.init(upstreams: [upstream], checkInterval: checkInterval)
    }

    /// HAProxy balancing over `upstreams` (the template's server line, once for each).
    init(upstreams: [String], checkInterval: String = "60s") throws {
        prefix = try TempDirectory.make()
        port = Net.freePort()
        let configURL = try fillTemplate(
            "scripts/haproxy.cfg.in", into: prefix.appendingPathComponent("haproxy.cfg"),
            ["@PORT@": "\(port)", "@CHECK_INTERVAL@": checkInterval])
        let servers = try String(contentsOf: configURL, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            .flatMap { line -> [String] in
                guard line.contains("@UPSTREAM@") else { return [String(line)] }
                return upstreams.enumerated().map { index, upstream in
                    // HAProxy names a unix socket by its path alone.
                    line.replacingOccurrences(
                        of: "@UPSTREAM@", with: upstream.hasPrefix("unix:") ? String(upstream.dropFirst(5)) : upstream
                    )
                    .replacingOccurrences(of: "server app1", with: "server app\(index + 1)")
                }
            }
        try servers.joined(separator: "\n").write(to: configURL, atomically: true, encoding: .utf8)
        // -db: stay in the foreground; -W is not needed (no reloads).
        child = try ChildProcess("haproxy", ["-db", "-f", configURL.path], directory: prefix)
        try Net.waitUntilHTTP(port: port)
    }

    var url: String { "http://127.0.0.1:\(port)" }
}

/// Writes the repository's `template` to `destination` with each placeholder
/// replaced (the configurations the scripts and the tests share).
func fillTemplate(_ template: String, into destination: URL, _ values: [String: String]) throws -> URL {
    var text = try String(contentsOf: Paths.repository.appendingPathComponent(template), encoding: .utf8)
    for (placeholder, value) in values { text = text.replacingOccurrences(of: placeholder, with: value) }
    try text.write(to: destination, atomically: true, encoding: .utf8)
    return destination
}

/// A web front end (nginx, HAProxy) driven with curl in tests.
protocol HTTPFrontEnd {
    /// `http://127.0.0.1:port`.
    var url: String { get }
    /// A scratch directory for curl's output.
    var prefix: URL { get }
}

extension HTTPFrontEnd {
    /// Runs curl against the front end; returns status code and body.
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

    /// Runs curl and also returns the response's headers, names lowercased (the
    /// last value of a repeated header).
    func curlWithHeaders(_ path: String, _ extra: [String] = []) throws -> (
        code: Int, headers: [String: String], body: Data
    ) {
        let headerFile = prefix.appendingPathComponent("headers-\(UUID().uuidString.prefix(8))")
        let (code, body) = try curl(path, ["-D", headerFile.path] + extra)
        var headers: [String: String] = [:]
        let text = (try? String(contentsOf: headerFile, encoding: .utf8)) ?? ""
        for line in text.components(separatedBy: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (code, headers, body)
    }
}
