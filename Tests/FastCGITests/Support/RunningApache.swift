import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real Apache httpd on 127.0.0.1 in front of a responder (`mod_proxy_fcgi`,
/// under `/app/`) and an authorizer (`mod_authnz_fcgi`, for `/protected/`, which
/// the responder then serves), configured from `scripts/apache2.conf.in`, stopped
/// when released. Apache does not serve as root: run as root, its children are
/// `www-data`, so the apps listen on TCP.
final class RunningApache: HTTPFrontEnd, @unchecked Sendable {
    let child: ChildProcess
    let port: UInt16
    let prefix: URL

    /// `responder` and `authorizer` are TCP app addresses (`127.0.0.1:port`).
    /// `files`: the directory X-Sendfile may name (`XSendFilePath`).
    init(responder: String, authorizer: String, files: String? = nil) throws {
        prefix = try TempDirectory.make()
        port = Net.freePort()
        try writeDocuments([:], under: prefix.appendingPathComponent("www"))
        let configURL = try fillTemplate(
            "scripts/apache2.conf.in", into: prefix.appendingPathComponent("httpd.conf"),
            [
                "@PREFIX@": prefix.path, "@PORT@": "\(port)", "@RESPONDER@": responder, "@AUTHORIZER@": authorizer,
                "@USER_LINES@": getuid() == 0 ? "User www-data\nGroup www-data" : "",
                "@FILES@": files ?? prefix.appendingPathComponent("files").path,
            ])
        child = try ChildProcess("apache2", ["-DFOREGROUND", "-f", configURL.path], directory: prefix)
        configPath = configURL.path
        try Net.waitUntilHTTP(port: port)
    }

    /// The configuration's path: it names this Apache's processes alone.
    private let configPath: String

    /// Stops Apache and every process of it: its children (www-data) outlive a
    /// parent that did not finish its SIGTERM shutdown within the 3 s
    /// ``ChildProcess/stop()`` allows and got SIGKILL.
    deinit {
        child.stop()
        _ = try? ChildProcess.run("pkill", ["-KILL", "-f", configPath], timeout: 10)
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// Apache's error log.
    var errorLog: String {
        (try? String(contentsOf: prefix.appendingPathComponent("error.log"), encoding: .utf8)) ?? ""
    }
}
