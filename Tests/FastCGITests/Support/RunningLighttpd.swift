import Foundation

/// A real lighttpd on 127.0.0.1 in front of a responder (under `/app`) and an
/// authorizer (for `/protected/`, whose files lighttpd serves itself), configured
/// from `scripts/lighttpd.conf.in`, stopped when released.
final class RunningLighttpd: HTTPFrontEnd, @unchecked Sendable {
    let child: ChildProcess
    let port: UInt16
    let prefix: URL

    /// `responder` and `authorizer` are app addresses (`127.0.0.1:port`, `unix:/path`).
    /// `offloaded`: the directory X-Sendfile may name (`x-sendfile-docroot`).
    init(responder: String, authorizer: String, files: [String: String] = [:], offloaded: String? = nil) throws {
        prefix = try TempDirectory.make()
        port = Net.freePort()
        try writeDocuments(files, under: prefix.appendingPathComponent("www"))
        let configURL = try fillTemplate(
            "scripts/lighttpd.conf.in", into: prefix.appendingPathComponent("lighttpd.conf"),
            [
                "@PREFIX@": prefix.path, "@PORT@": "\(port)", "@RESPONDER@": Self.backend(responder),
                "@AUTHORIZER@": Self.backend(authorizer),
                "@FILES@": offloaded ?? prefix.appendingPathComponent("files").path,
            ])
        // -D: stay in the foreground.
        child = try ChildProcess("lighttpd", ["-D", "-f", configURL.path], directory: prefix)
        try Net.waitUntilHTTP(port: port)
    }

    /// A `fastcgi.server` backend entry for an app address.
    static func backend(_ address: String) -> String {
        if address.hasPrefix("unix:") { return "\"socket\" => \"\(address.dropFirst(5))\"" }
        let colon = address.lastIndex(of: ":")!
        return "\"host\" => \"\(address[..<colon])\", \"port\" => \(address[address.index(after: colon)...])"
    }

    var url: String { "http://127.0.0.1:\(port)" }
}

/// Writes `files` (relative path → text) under `root`, making the directories.
func writeDocuments(_ files: [String: String], under root: URL) throws {
    try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    for (path, text) in files {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
    }
}
