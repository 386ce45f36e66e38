import Foundation
import Testing

/// The roles behind the two web servers that implement the Authorizer role,
/// lighttpd (`mod_fastcgi`) and Apache (`mod_proxy_fcgi`, `mod_authnz_fcgi`),
/// at every threading level, with the configurations in `scripts/` that
/// docs/DEPLOYMENT.md shows. Neither server sends an authorizer FCGI_STDIN.
@Suite("Behind lighttpd and Apache", .serialized, .timeLimit(.minutes(5)))
struct AuthorizerServersTests {
    /// The `authorizer` example's environment: its token is `letmein`.
    static let authorizerEnvironment = ProcessInfo.processInfo.environment.merging(["AUTH_TOKEN": "letmein"]) { $1 }
    static let right = ["-H", "Authorization: Bearer letmein"]
    static let wrong = ["-H", "Authorization: Bearer nope"]
    /// A hung request fails the test in seconds, not after curl's default wait.
    static let bounded = ["-m", "10"]

    /// The echo responder and the token authorizer at `level`.
    func apps(level: Int, unix: Bool) throws -> (responder: RunningApp, authorizer: RunningApp) {
        let arguments = ["--threading-level", "\(level)"]
        return (
            try RunningApp("echo", unix: unix, arguments: arguments + ["--status-path", "/app/status"]),
            try RunningApp("authorizer", unix: unix, arguments: arguments, environment: Self.authorizerEnvironment)
        )
    }

    /// A body posted through `server` to the responder comes back byte for byte,
    /// and 20 GETs in a row are answered.
    func checkResponder(_ server: some HTTPFrontEnd, path: String) throws {
        let file = server.prefix.appendingPathComponent("body.bin")
        let body = Data(testBytes(300_000, seed: 18))
        try body.write(to: file)
        let (code, echoed) = try server.curl(path, Self.bounded, body: file)
        #expect(code == 200)
        #expect(echoed == body)
        for i in 0..<20 { #expect(try server.curl("\(path)?i=\(i)", Self.bounded).code == 200, "GET \(i)") }
    }

    @Test("lighttpd: responder echoes a body; authorizer allows and denies GET and POST", arguments: [0, 1, 2])
    func lighttpd(level: Int) throws {
        let (responder, authorizer) = try apps(level: level, unix: true)
        let server = try RunningLighttpd(
            responder: responder.address, authorizer: authorizer.address, files: ["protected/file.txt": "the protected file\n"])
        try checkResponder(server, path: "/app/echo")
        let file = "/protected/file.txt"
        #expect(try server.curl(file, Self.bounded).code == 401)
        #expect(try server.curl(file, Self.bounded + Self.wrong).code == 401)
        let allowed = try server.curl(file, Self.bounded + Self.right)
        #expect(allowed.code == 200)
        #expect(String(decoding: allowed.body, as: UTF8.self) == "the protected file\n")
        // A POST: lighttpd sends the authorizer no STDIN (the body is not its).
        let post = server.prefix.appendingPathComponent("post.bin")
        try Data("a body for the file".utf8).write(to: post)
        let posted = try server.curl(file, Self.bounded + Self.right, body: post)
        #expect(posted.code == 200)
        #expect(String(decoding: posted.body, as: UTF8.self) == "the protected file\n")
        #expect(try server.curl(file, Self.bounded + Self.wrong, body: post).code == 401)
    }

    @Test("Apache: mod_proxy_fcgi echoes a body; mod_authnz_fcgi allows and denies", arguments: [0, 1, 2])
    func apache(level: Int) throws {
        let (responder, authorizer) = try apps(level: level, unix: false)
        let server = try RunningApache(responder: responder.address, authorizer: authorizer.address)
        try checkResponder(server, path: "/app/echo")
        #expect(try server.curl("/protected/x", Self.bounded).code == 401)
        #expect(try server.curl("/protected/x", Self.bounded + Self.wrong).code == 401)
        #expect(try server.curl("/protected/x", Self.bounded + Self.right).code == 200)
        // Allowed, then served by the responder, which gets the body.
        let post = server.prefix.appendingPathComponent("post.bin")
        try Data("posted past the authorizer".utf8).write(to: post)
        let posted = try server.curl("/protected/x", Self.bounded + Self.right, body: post)
        #expect(posted.code == 200)
        #expect(String(decoding: posted.body, as: UTF8.self) == "posted past the authorizer")
        #expect(try server.curl("/protected/x", Self.bounded + Self.wrong, body: post).code == 401)
        // enablereuse=on: Apache kept its connections to the responder (FCGI_KEEP_CONN).
        let (code, json) = try server.curl("/app/status?json", Self.bounded)
        #expect(code == 200)
        let status = try JSONSerialization.jsonObject(with: json) as? [String: Any] ?? [:]
        let served = status["requests served"] as? Int ?? 0
        let connections = status["accepted conn"] as? Int ?? 0
        print("Apache → echo level \(level): \(served) requests over \(connections) connections")
        #expect(served >= 23)
        #expect(connections > 0 && connections < served / 2, "connections were kept")
    }
}
