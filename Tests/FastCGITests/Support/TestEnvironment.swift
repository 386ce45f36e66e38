import FastCGIClient
import FastCGIWire
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Where the built products and repository files are.
enum Paths {
    /// The directory of the test binary, where SwiftPM also puts the example apps.
    static let binDirectory: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().path
    }()

    /// The path of an example app.
    static func app(_ name: String) -> String { "\(binDirectory)/\(name)" }

    /// The repository root (for scripts/nginx.conf.in).
    static let repository: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

/// Network helpers for end-to-end tests (127.0.0.1 and unix sockets only).
enum Net {
    /// A TCP port on 127.0.0.1 that was free a moment ago.
    static func freePort() -> UInt16 {
        let (fd, port) = boundSocket()
        close(fd)
        return port
    }

    /// A socket listening on 127.0.0.1 that never accepts: connections complete
    /// in its backlog and get no byte back (a hung app, for deadlines). Close the
    /// descriptor when done.
    static func silentListener() -> (fd: Int32, address: String) {
        let (fd, port) = boundSocket()
        listen(fd, 8)
        return (fd, "127.0.0.1:\(port)")
    }

    /// A TCP socket bound to a fresh port on 127.0.0.1, and the port.
    private static func boundSocket() -> (Int32, UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, UInt16(bigEndian: addr.sin_port))
    }

    /// Waits until something accepts connections on `address`.
    static func waitUntilListening(_ address: String, timeout: Double = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let connection = try? FastCGIConnection(to: address, timeout: 1) {
                connection.close()
                return
            }
            usleep(20_000)
        }
        throw TestFailure("nothing listens on \(address) after \(timeout) s")
    }

    /// Waits until an HTTP server answers on 127.0.0.1:`port`.
    static func waitUntilHTTP(port: UInt16, timeout: Double = 20) throws {
        try waitUntilListening("127.0.0.1:\(port)", timeout: timeout)
    }
}

/// An example app listening on a fresh address, stopped when released.
final class RunningApp: @unchecked Sendable {
    let child: ChildProcess
    let address: String

    /// Starts example `name` with `--bind` on a fresh TCP port (or unix socket).
    init(_ name: String, unix: Bool = false, arguments: [String] = [], environment: [String: String]? = nil) throws {
        let directory = try TempDirectory.make()
        address = unix ? "unix:\(directory.path)/app.sock" : "127.0.0.1:\(Net.freePort())"
        child = try ChildProcess(
            Paths.app(name), ["--bind", address] + arguments, environment: environment, directory: directory)
        try Net.waitUntilListening(address)
    }

    /// Starts the echo app with `--bind bind` (a wildcard address, say) and talks
    /// to it at `address` (on this machine).
    init(echoBoundTo bind: String, address: String, environment: [String: String]? = nil) throws {
        let directory = try TempDirectory.make()
        self.address = address
        child = try ChildProcess(Paths.app("echo"), ["--bind", bind], environment: environment, directory: directory)
        try Net.waitUntilListening(address)
    }

    /// Starts example `name` under spawn-fcgi, which passes the socket as fd 0.
    init(spawnFCGI name: String, unix: Bool = false, arguments: [String] = []) throws {
        let directory = try TempDirectory.make()
        var spawnArguments = ["-n"]
        if unix {
            address = "unix:\(directory.path)/app.sock"
            spawnArguments += ["-s", "\(directory.path)/app.sock"]
        } else {
            let port = Net.freePort()
            address = "127.0.0.1:\(port)"
            spawnArguments += ["-a", "127.0.0.1", "-p", "\(port)"]
        }
        child = try ChildProcess("spawn-fcgi", spawnArguments + ["--", Paths.app(name)] + arguments, directory: directory)
        try Net.waitUntilListening(address)
    }

    /// Sends one request on a new connection.
    func send(_ request: FastCGIRequest) throws -> FastCGIResponse {
        let connection = try FastCGIConnection(to: address)
        return try connection.send(request)
    }
}

extension FastCGIRequest {
    /// A request with typical web-server params plus `extra`.
    static func http(
        method: String = "GET", uri: String = "/", body: [UInt8] = [], extra: [String: String] = [:],
        role: Role = .responder, data: [UInt8]? = nil, requestID: UInt16 = 1, keepConnection: Bool = false
    ) -> FastCGIRequest {
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        let query = uri.contains("?") ? String(uri.split(separator: "?", maxSplits: 1)[1]) : ""
        var params: [String: String] = [
            "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": method,
            "REQUEST_URI": uri, "SCRIPT_NAME": path, "QUERY_STRING": query, "SERVER_NAME": "localhost",
            "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1", "CONTENT_LENGTH": "\(body.count)",
        ]
        for (name, value) in extra { params[name] = value }
        return FastCGIRequest(
            requestID: requestID, role: role,
            params: params.sorted { $0.key < $1.key }.map { NameValuePair($0.key, $0.value) }, stdin: body,
            data: data, keepConnection: keepConnection)
    }
}

/// Deterministic pseudo-random bytes (so failures reproduce).
func testBytes(_ count: Int, seed: UInt64 = 0x5eed) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return UInt8(truncatingIfNeeded: state >> 33)
    }
}

/// A value shared by test threads, behind an NSLock (pthread-based, which
/// ThreadSanitizer follows; Synchronization's Mutex uses futexes it does not).
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) -> R) -> R { lock.withLock { body(&value) } }
}
