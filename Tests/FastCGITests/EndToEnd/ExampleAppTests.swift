import FastCGIClient
import FastCGIWire
import Foundation
import Testing

/// Every example app, started under spawn-fcgi (socket on fd 0) and with `--bind`
/// on TCP and on a unix socket, answering real requests.
@Suite("Example apps under spawn-fcgi and --bind", .serialized, .timeLimit(.minutes(5)))
struct ExampleAppTests {
    enum Launch: String, CaseIterable, CustomStringConvertible {
        case spawnTCP, spawnUnix, bindTCP, bindUnix
        var description: String { rawValue }

        func start(_ app: String, _ arguments: [String] = []) throws -> RunningApp {
            switch self {
            case .spawnTCP: try RunningApp(spawnFCGI: app, arguments: arguments)
            case .spawnUnix: try RunningApp(spawnFCGI: app, unix: true, arguments: arguments)
            case .bindTCP: try RunningApp(app, arguments: arguments)
            case .bindUnix: try RunningApp(app, unix: true, arguments: arguments)
            }
        }
    }

    @Test("hello answers with a greeting", arguments: Launch.allCases)
    func hello(launch: Launch) throws {
        let app = try launch.start("hello")
        let reply = try app.send(.http(uri: "/?name=Ada"))
        #expect(reply.protocolStatus == .requestComplete)
        #expect(reply.header("Content-Type") == "text/plain; charset=utf-8")
        #expect(String(decoding: reply.body, as: UTF8.self) == "Hello, Ada!\n")
    }

    @Test("echo returns the body byte for byte", arguments: Launch.allCases)
    func echo(launch: Launch) throws {
        let app = try launch.start("echo")
        for size in [0, 1, 65535, 65536, 1 << 20] {
            let body = testBytes(size, seed: UInt64(size))
            let reply = try app.send(.http(method: "POST", body: body))
            #expect(reply.header("Content-Type") == "application/octet-stream")
            #expect(reply.body == body, "body of \(size) bytes")
        }
    }

    @Test("echo lists params sorted with ECHO_PARAMS=1")
    func echoParams() throws {
        let app = try Launch.bindTCP.start("echo")
        let reply = try app.send(.http(uri: "/p?x=1", extra: ["ECHO_PARAMS": "1", "HTTP_X_LATIN": "caf\u{e9}"]))
        let text = String(decoding: reply.body, as: UTF8.self)
        #expect(reply.header("Content-Type") == "text/plain")
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines == lines.sorted())
        #expect(lines.contains("QUERY_STRING=x=1"))
        #expect(lines.contains("ECHO_PARAMS=1"))
    }

    @Test("a Latin-1 param value reaches the handler unmangled")
    func latin1Param() throws {
        let app = try Launch.bindTCP.start("echo")
        var request = FastCGIRequest.http(extra: ["ECHO_PARAMS": "1"])
        let latin1: [UInt8] = [0x63, 0x61, 0x66, 0xE9]  // "café" in ISO-8859-1: not UTF-8
        request.params.append(NameValuePair(name: Array("HTTP_X_NAME".utf8), value: latin1))
        let reply = try app.send(request)
        let expected = Array("HTTP_X_NAME=".utf8) + latin1 + [10]
        #expect(reply.body.firstRange(of: expected) != nil)
    }

    @Test("authorizer role: allowed with the token, refused without", arguments: [Launch.spawnTCP, .bindUnix])
    func authorizer(launch: Launch) throws {
        let app = try launch.start("authorizer")
        let allowed = try app.send(.http(extra: ["HTTP_AUTHORIZATION": "Bearer secret"], role: .authorizer))
        #expect(allowed.header("Status") == "200")
        #expect(allowed.header("Variable-AUTH_USER") == "token-user")
        let denied = try app.send(.http(extra: ["HTTP_AUTHORIZATION": "Bearer wrong"], role: .authorizer))
        #expect(denied.header("Status") == "401")
        #expect(String(decoding: denied.body, as: UTF8.self) == "authorization required\n")
    }

    @Test("echo as authorizer follows the contract")
    func echoAuthorizer() throws {
        let app = try Launch.bindTCP.start("echo")
        let allowed = try app.send(.http(extra: ["HTTP_AUTHORIZATION": "Basic eDp5", "REMOTE_USER": "ada"], role: .authorizer))
        #expect(allowed.header("Status") == "200")
        #expect(allowed.header("Variable-AUTH_USER") == "ada")
        let anonymous = try app.send(.http(extra: ["HTTP_AUTHORIZATION": "Basic eDp5"], role: .authorizer))
        #expect(anonymous.header("Variable-AUTH_USER") == "anonymous")
        let denied = try app.send(.http(role: .authorizer))
        #expect(denied.header("Status") == "403")
    }

    @Test("filter role: data read before stdin (upper-cased file)", arguments: [Launch.spawnUnix, .bindTCP])
    func filter(launch: Launch) throws {
        let app = try launch.start("filter")
        let reply = try app.send(
            .http(
                method: "POST", body: Array("form body".utf8), extra: ["SCRIPT_FILENAME": "/srv/file.txt"],
                role: .filter, data: Array("hello filter\n".utf8)))
        #expect(reply.header("X-Filtered-File") == "/srv/file.txt")
        #expect(reply.header("X-Stdin-Bytes") == "9")
        #expect(String(decoding: reply.body, as: UTF8.self) == "HELLO FILTER\n")
    }

    @Test("echo as filter: stdin then data")
    func echoFilter() throws {
        let app = try Launch.bindTCP.start("echo")
        let data = testBytes(200_000, seed: 7)
        let reply = try app.send(.http(method: "POST", body: Array("in:".utf8), role: .filter, data: data))
        #expect(reply.body == Array("in:".utf8) + data)
    }

    @Test("cgi-fcgi from libfcgi-bin drives the apps", arguments: [Launch.spawnTCP, .bindTCP])
    func cgiFCGI(launch: Launch) throws {
        let app = try launch.start("echo")
        let directory = try TempDirectory.make()
        let bodyURL = directory.appendingPathComponent("body")
        let body = testBytes(300_000, seed: 3)
        try Data(body).write(to: bodyURL)
        let result = try ChildProcess.run(
            "cgi-fcgi", ["-bind", "-connect", app.address],
            environment: ["REQUEST_METHOD": "POST", "CONTENT_LENGTH": "\(body.count)", "PATH": "/usr/bin:/bin"],
            stdin: bodyURL)
        #expect(result.status == 0)
        let header = Array("Content-Type: application/octet-stream\r\n\r\n".utf8)
        #expect(Array(result.stdout) == header + body)

        let hello = try launch.start("hello")
        let greeting = try ChildProcess.run(
            "cgi-fcgi", ["-bind", "-connect", hello.address],
            environment: ["REQUEST_METHOD": "GET", "QUERY_STRING": "name=cgi-fcgi"])
        #expect(String(decoding: greeting.stdout, as: UTF8.self).hasSuffix("\r\n\r\nHello, cgi-fcgi!\n"))
    }

    @Test("every level serves concurrent clients", arguments: [0, 1, 2])
    func concurrentClients(level: Int) throws {
        let app = try Launch.bindTCP.start("echo", ["--threading-level", "\(level)", "--workers", "4"])
        let failures = Failures()
        onParallelThreads(16) { i in
            let body = testBytes(10_000 + i, seed: UInt64(i))
            do {
                let reply = try app.send(.http(method: "POST", body: body))
                if reply.body != body { failures.add("client \(i): wrong body") }
            } catch {
                failures.add("client \(i): \(error)")
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all)")
    }

    @Test("keep-conn: several requests on one connection")
    func keepConnection() throws {
        let app = try Launch.bindTCP.start("echo")
        let connection = try FastCGIConnection(to: app.address)
        for i in 0..<5 {
            let body = Array("request \(i)".utf8)
            let reply = try connection.send(.http(method: "POST", body: body, keepConnection: true))
            #expect(reply.body == body)
        }
        // Without FCGI_KEEP_CONN the app closes the connection after the reply.
        let last = try connection.send(.http(method: "POST", body: [1], keepConnection: false))
        #expect(last.body == [1])
        #expect(try connection.readRecord() == nil)
    }
}

/// Collects failures from concurrent clients.
final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ item: String) { lock.withLock { items.append(item) } }
    var all: [String] { lock.withLock { items } }
}

/// Runs `body(0..<count)` on `count` threads at once and waits for all. (Unlike
/// `DispatchQueue.concurrentPerform`, which runs only as many at once as there
/// are cores, every client really is concurrent.)
func onParallelThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for i in 0..<count {
        group.enter()
        let thread = Thread {
            body(i)
            group.leave()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
    group.wait()
}
