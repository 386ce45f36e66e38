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

    /// An address on 127.0.0.1 that refuses connections for as long as the
    /// returned descriptor is open: a bound socket that does not listen (no
    /// port guessed). Close the descriptor when done.
    static func refusingAddress() -> (fd: Int32, address: String) {
        let (fd, port) = boundSocket()
        return (fd, "127.0.0.1:\(port)")
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

    /// The TCP port process `pid` listens on, once it does: the app was
    /// started with `--bind 127.0.0.1:0` (or `[::1]:0`) and this reads the port the
    /// kernel chose back, from the socket inodes of `/proc/PID/fd` and
    /// `/proc/net/tcp` (whatever the app logs). Throws past `timeout` seconds or
    /// when the process has exited.
    static func listeningPort(of pid: Int32, timeout: Double = 20) throws -> UInt16 {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
            guard FileManager.default.fileExists(atPath: "/proc/\(pid)") else { break }
            let inodes = Set(
                descriptors.compactMap { fd -> String? in
                    guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"),
                        target.hasPrefix("socket:[")
                    else { return nil }
                    return String(target.dropFirst(8).dropLast())
                })
            let table = ["tcp", "tcp6"].map { (try? String(contentsOfFile: "/proc/\(pid)/net/\($0)", encoding: .utf8)) ?? "" }
            for line in table.joined().split(separator: "\n") {
                // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
                let fields = line.split(separator: " ")
                guard fields.count > 9, fields[3] == "0A", inodes.contains(String(fields[9])),
                    let port = UInt16(fields[1].split(separator: ":").last ?? "", radix: 16)
                else { continue }
                return port
            }
            usleep(10_000)
        }
        throw TestFailure("process \(pid) listens on no TCP port")
    }

    /// Waits until something accepts connections on `address`.
    static func waitUntilListening(_ address: String, timeout: Double = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let connection = try? FastCGIConnection(to: address, timeout: .seconds(1)) {
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
        // TCP on port 0: the kernel picks a free port, read back once bound.
        // libfcgi's FCGX_OpenSocket refuses port 0, so the C reference gets a
        // port that was free a moment ago.
        let port = name == "reference-echo" ? "\(Net.freePort())" : "0"
        let bind = unix ? "unix:\(directory.path)/app.sock" : "127.0.0.1:\(port)"
        child = try ChildProcess(
            Paths.app(name), ["--bind", bind] + arguments, environment: environment, directory: directory)
        address = unix || port != "0" ? bind : "127.0.0.1:\(try Net.listeningPort(of: child.pid))"
        try Net.waitUntilListening(address)
    }

    /// Starts the echo app with `--bind HOST:0` (a wildcard host, say) and
    /// talks to it on 127.0.0.1 at the port it was given.
    init(echoBoundTo host: String, environment: [String: String]? = nil) throws {
        let directory = try TempDirectory.make()
        child = try ChildProcess(Paths.app("echo"), ["--bind", "\(host):0"], environment: environment, directory: directory)
        address = "127.0.0.1:\(try Net.listeningPort(of: child.pid))"
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
            let port = Net.freePort()  // spawn-fcgi takes no port 0
            address = "127.0.0.1:\(port)"
            spawnArguments += ["-a", "127.0.0.1", "-p", "\(port)"]
        }
        child = try ChildProcess("spawn-fcgi", spawnArguments + ["--", Paths.app(name)] + arguments, directory: directory)
        try Net.waitUntilListening(address)
    }

    /// Waits until the app has logged `text` `count` times (bounded: 10 s):
    /// an event to wait for, where a fixed sleep would guess.
    func waitForLog(_ text: String, count: Int = 1) throws {
        let deadline = Date().addingTimeInterval(10)
        while child.stderrText.components(separatedBy: text).count - 1 < count {
            guard Date() < deadline else { throw TestFailure("the app never logged \"\(text)\" (\(count)×)") }
            usleep(5_000)
        }
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
