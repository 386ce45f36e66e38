import FastCGIClient
import Foundation
import Testing

@testable import FastCGI

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 33, point 4: `request.offload(file:)` hands a file to the web server —
/// nginx's `X-Accel-Redirect`, `X-Sendfile` for Apache (mod_xsendfile) and
/// lighttpd — which sends it itself. The echo example answers `X-Echo-Offload:
/// NAME` with the file NAME of its `ECHO_FILES` directory.
@Suite("request.offload(file:): the web server sends the file", .serialized, .timeLimit(.minutes(5)))
struct OffloadTests {
    /// A directory every front end's workers may read, with a 50 MiB file.
    static func files() throws -> (directory: URL, bytes: Data) {
        let directory = try TempDirectory.make().appendingPathComponent("files")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var bytes = Data(count: 50 << 20)
        bytes.withUnsafeMutableBytes { raw in
            for i in stride(from: 0, to: raw.count, by: 4096) { raw[i] = UInt8(truncatingIfNeeded: i / 4096 &* 31) }
        }
        try bytes.write(to: directory.appendingPathComponent("big.bin"))
        // Apache's children run as www-data.
        for url in [directory, directory.deletingLastPathComponent()] { chmod(url.path, 0o755) }
        chmod(directory.appendingPathComponent("big.bin").path, 0o644)
        return (directory, bytes)
    }

    /// Fetches `/app/` through `frontEnd` asking echo for big.bin; checks the bytes.
    static func fetch(_ frontEnd: any HTTPFrontEnd, _ path: String, expect bytes: Data) throws {
        let (code, body) = try frontEnd.curl(path, ["-H", "X-Echo-Offload: big.bin"])
        #expect(code == 200)
        #expect(body.count == bytes.count)
        #expect(body == bytes, "the file's bytes")
    }

    @Test("nginx: X-Accel-Redirect to an internal location; a direct request for it is refused")
    func nginx() throws {
        let (directory, bytes) = try Self.files()
        let app = try RunningApp(
            "echo", unix: true,
            arguments: ["--file-offload", "x-accel-redirect:\(directory.path):/protected-files/"],
            environment: ["ECHO_FILES": directory.path])
        let nginx = try RunningNginx(upstream: app.address, files: directory.path)
        try Self.fetch(nginx, "/download", expect: bytes)
        #expect(try nginx.curl("/protected-files/big.bin").code == 404)
        #expect(try nginx.curl("/download", ["-H", "X-Echo-Offload: missing.bin"]).code == 404)
    }

    @Test("Apache (mod_proxy_fcgi + mod_xsendfile): X-Sendfile")
    func apache() throws {
        let (directory, bytes) = try Self.files()
        let app = try RunningApp(
            "echo", arguments: ["--file-offload", "x-sendfile"], environment: ["ECHO_FILES": directory.path])
        let apache = try RunningApache(responder: app.address, authorizer: app.address, files: directory.path)
        try Self.fetch(apache, "/app/download", expect: bytes)
    }

    @Test("lighttpd (x-sendfile enabled): X-Sendfile")
    func lighttpd() throws {
        let (directory, bytes) = try Self.files()
        let app = try RunningApp(
            "echo", unix: true, arguments: ["--file-offload", "x-sendfile"], environment: ["ECHO_FILES": directory.path])
        let lighttpd = try RunningLighttpd(responder: app.address, authorizer: app.address, offloaded: directory.path)
        try Self.fetch(lighttpd, "/app/download", expect: bytes)
    }

    @Test("no offload configured: the app sends the file itself, with its length")
    func sentByTheApp() throws {
        let (directory, bytes) = try Self.files()
        let server = Server(configuration: Server.Configuration()) { request in
            try request.offload(file: directory.appendingPathComponent("big.bin").path)
        }
        let response = server.respond(to: TestRequest("GET", "/"))
        #expect(response.status == .ok)
        #expect(response.header("Content-Length") == "\(bytes.count)")
        #expect(response.body.count == bytes.count && Data(response.body) == bytes)
    }

    @Test("the headers each offload sets; paths outside the root, relative or with .. are a 404")
    func headers() throws {
        var configuration = Server.Configuration()
        configuration.fileOffload = .accelRedirect(root: "/srv/files", location: "/protected-files/")
        let nginx = Server(configuration: configuration) { request in
            try request.offload(file: request.environ["FILE"] ?? "")
        }
        func answer(_ server: Server, _ file: String) -> TestResponse {
            var request = TestRequest("GET", "/")
            request.params["FILE"] = file
            return server.respond(to: request)
        }
        let named = answer(nginx, "/srv/files/a dir/r\u{e9}port.pdf")
        #expect(named.header("X-Accel-Redirect") == "/protected-files/a%20dir/r%C3%A9port.pdf")
        #expect(named.header("Content-Type") == nil, "nginx picks the type from the name")
        #expect(named.body.isEmpty)
        for bad in ["/etc/passwd", "relative/file", "/srv/files/../secret", "/srv/filesystem/x"] {
            #expect(answer(nginx, bad).status == .notFound, "\(bad)")
        }
        configuration.fileOffload = .sendfile
        let apache = Server(configuration: configuration) { request in
            try request.write("dropped")
            try request.offload(file: "/srv/files/a.txt", contentType: "text/plain")
        }
        let sent = apache.respond(to: TestRequest("GET", "/"))
        #expect(sent.header("X-Sendfile") == "/srv/files/a.txt")
        #expect(sent.header("Content-Type") == "text/plain")
        #expect(sent.body.isEmpty)
    }
}
