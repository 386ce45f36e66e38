import FastCGIClient
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Beyond one process: nginx in front of three instances (scripts/nginx-pool.conf.in),
/// one killed under load.
@Suite("Scale-out: nginx upstream of three instances", .serialized, .timeLimit(.minutes(3)))
struct ScaleOutTests {
    /// One HTTP/1.1 GET on a new connection; the status code, nil if the
    /// exchange failed.
    static func get(port: UInt16, path: String) -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = port.bigEndian
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
            return nil
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += chunk[..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 "), text.contains("\r\n\r\nHello, world!\n") else { return nil }
        return Int(text.dropFirst(9).prefix(3))
    }

    /// The "requests served" of an instance's status page.
    static func served(_ address: String) throws -> Int {
        let reply = try FastCGIConnection(to: address).send(
            FastCGIRequest(params: [NameValuePair("REQUEST_METHOD", "GET"), NameValuePair("SCRIPT_NAME", "/status")]))
        let line = String(decoding: reply.body, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("requests served:") }
        return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? -1
    }

    @Test("one of three instances killed with SIGKILL under load: no GET fails, the others take its share")
    func failover() throws {
        let apps = try (0..<3).map { _ in try RunningApp("hello", arguments: ["--status-path", "/status"]) }
        let nginx = try RunningNginx(upstreams: apps.map(\.address))
        let stop = Atomic<Bool>(false)
        let results = Locked<(ok: Int, failed: Int)>((0, 0))
        let load = DispatchGroup()
        for _ in 0..<4 {
            load.enter()
            Thread {
                while !stop.load(ordering: .relaxed) {
                    let status = Self.get(port: nginx.port, path: "/")
                    results.withLock { if status == 200 { $0.ok += 1 } else { $0.failed += 1 } }
                }
                load.leave()
            }.start()
        }
        #expect(ProcessManagerTests.eventually { results.withLock { $0.ok } >= 200 })
        let before = try apps.map { try Self.served($0.address) }
        #expect(before.allSatisfy { $0 > 0 }, "least_conn spreads the load: \(before)")
        kill(apps[0].child.pid, SIGKILL)
        let atKill = results.withLock { $0.ok }
        #expect(ProcessManagerTests.eventually { results.withLock { $0.ok } >= atKill + 400 })
        stop.store(true, ordering: .relaxed)
        load.wait()
        let after = try apps.dropFirst().map { try Self.served($0.address) }
        let (ok, failed) = results.withLock { $0 }
        print("scale-out: \(ok) GETs answered, \(failed) failed; survivors served \(before.dropFirst()) → \(after)")
        #expect(failed == 0)
        #expect(after[0] > before[1] + 50 && after[1] > before[2] + 50, "the survivors took the load: \(after)")
    }
}
