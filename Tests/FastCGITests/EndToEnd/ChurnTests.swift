import FastCGIClient
import FastCGIWire
import Foundation
import Testing

/// Connection churn, checked byte for byte: several clients at once, each request
/// with a body of its own that must come back exactly, at every level, over TCP and
/// unix sockets, with a new connection per request (nginx's default), kept
/// connections, pipelined requests, and multiplexed ones (level 2). A stray byte
/// on the wire (a descriptor used after its owner closed it) or a reply that went
/// to the wrong client fails here. Bounded by request count, not by time.
@Suite("Churn: every reply byte for byte under connection churn", .serialized, .timeLimit(.minutes(5)))
struct ChurnTests {
    enum Mode: String, CaseIterable, Sendable {
        /// A new connection per request, closed by the app (no FCGI_KEEP_CONN).
        case newConnection
        /// One kept connection per client, a request at a time.
        case kept
        /// Two requests written back to back on a kept connection.
        case pipelined
        /// Four requests in flight at once on a kept connection (level 2).
        case multiplexed
    }

    static let clients = 6
    static let requestsPerClient = 300

    static let cases: [(level: Int, unix: Bool, mode: Mode)] = [0, 1, 2].flatMap { level in
        [false, true].flatMap { unix in
            Mode.allCases.filter { $0 != .multiplexed || level == 2 }.map { (level, unix, $0) }
        }
    }

    @Test("replies are exact", arguments: cases)
    func churn(level: Int, unix: Bool, mode: Mode) throws {
        let app = try RunningApp("echo", unix: unix, arguments: ["--threading-level", "\(level)", "--log-level", "error"])
        // The baseline once the server is wholly up (it listens before its
        // workers' pipes exist): after a first request.
        _ = try app.send(.http())
        let baseline = Self.openDescriptors(app.child.pid)
        let failures = Failures()
        onParallelThreads(Self.clients) { client in
            do {
                try Self.drive(app.address, client: client, mode: mode)
            } catch {
                failures.add("client \(client): \(error)")
            }
        }
        #expect(failures.all.isEmpty, "level \(level), \(unix ? "unix" : "TCP"), \(mode): \(failures.all.prefix(5))")
        // Every connection's socket is let go once its last user is done: waited
        // for, not slept on. Kept for reuse: a kit (a wake-up and an acceptor's
        // epoll set) for each of up to 8 acceptors waiting and 8 idle serving
        // threads.
        let bound = baseline + 2 * (8 + 8) + 2
        var open = Self.openDescriptors(app.child.pid)
        for _ in 0..<500 where open > bound {
            usleep(10_000)
            open = Self.openDescriptors(app.child.pid)
        }
        #expect(open <= bound, "\(open) descriptors open after the clients left, \(baseline) before")
    }

    @Test("a handler slower than its 2 MiB upload gets every byte (the upload waits for it)", arguments: [0, 1, 2])
    func slowReader(level: Int) throws {
        // gzip at level 9 over a very compressible body: the handler reads for a
        // long time while writing almost nothing, so only its reads can wake the
        // connection's thread, which waits once more than the engine holds for a
        // request (256 KiB at levels 0/1) has piled up during the first 300 ms.
        let app = try RunningApp(
            "echo", arguments: ["--threading-level", "\(level)", "--gzip", "9", "--log-level", "error"])
        let body = Array(String(repeating: "a body read slower than it arrives\n", count: 60_000).utf8)
        let connection = try FastCGIConnection(to: app.address, timeout: .seconds(20))
        defer { connection.close() }
        let request = FastCGIRequest(
            params: Self.params + [NameValuePair("ECHO_SLEEP_MS", "300"), NameValuePair("HTTP_ACCEPT_ENCODING", "gzip")],
            stdin: body, keepConnection: true)
        try connection.write(request.encoded)
        let reply = try connection.readResponse()
        #expect(reply.protocolStatus == .requestComplete)
        let decoded = try Gunzip.decode(reply.body)
        #expect(decoded.complete)
        #expect(decoded.output == body)
    }

    /// The number of descriptors process `pid` has open.
    static func openDescriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
    }

    /// The body of one request: unique to the client and the request, of varying length.
    static func body(client: Int, request: Int) -> [UInt8] {
        let tag = Array("client \(client) request \(request) ".utf8)
        return tag + testBytes((client * 7919 + request * 104_729) % 3000, seed: UInt64(client * 1000 + request))
    }

    static let params = [NameValuePair("REQUEST_METHOD", "POST"), NameValuePair("SCRIPT_NAME", "/churn")]

    static func drive(_ address: String, client: Int, mode: Mode) throws {
        let batch = mode == .pipelined ? 2 : mode == .multiplexed ? 4 : 1
        var connection: FastCGIConnection?
        var sent = 0
        while sent < requestsPerClient {
            if connection == nil { connection = try FastCGIConnection(to: address, timeout: .seconds(10)) }
            guard let current = connection else { continue }
            var expected: [UInt16: [UInt8]] = [:]
            var bytes: [UInt8] = []
            for slot in 0..<batch {
                // Pipelined requests reuse id 1, as web servers do; multiplexed ones differ.
                let id = UInt16(mode == .multiplexed ? slot + 1 : 1)
                let body = Self.body(client: client, request: sent + slot)
                if mode == .pipelined { expected[UInt16(slot + 1)] = body } else { expected[id] = body }
                bytes +=
                    FastCGIRequest(
                        requestID: id, params: params, stdin: body, keepConnection: mode != .newConnection
                    ).encoded
            }
            try current.write(bytes)
            let replies =
                try mode == .pipelined ? readInOrder(current, count: batch) : Raw.readResponses(current, ids: Set(expected.keys))
            for (id, body) in expected {
                guard let reply = replies[id] else { throw TestFailure("request \(sent): no reply for id \(id)") }
                guard reply.body == body, reply.protocolStatus == .requestComplete, reply.endCount == 1 else {
                    throw TestFailure(
                        "request \(sent), id \(id): \(reply.body.count) bytes back for \(body.count), status \(reply.protocolStatus)"
                    )
                }
            }
            sent += batch
            if mode == .newConnection {
                // The app closes a connection without FCGI_KEEP_CONN after its request.
                guard try current.readRecord() == nil else { throw TestFailure("a record after the request's end") }
                current.close()
                connection = nil
            }
        }
        connection?.close()
    }

    /// Replies to `count` pipelined requests that all use id 1, keyed 1... in order.
    static func readInOrder(_ connection: FastCGIConnection, count: Int) throws -> [UInt16: FastCGIResponse] {
        var replies: [UInt16: FastCGIResponse] = [:]
        for slot in 1...count { replies[UInt16(slot)] = try Raw.readResponses(connection, ids: [1])[1] }
        return replies
    }
}
