import FastCGI
import FastCGIClient
import FastCGIWire
import Foundation
import Testing

/// A connection whose requests have all their input gives its thread back while
/// they run (issue 19), and the idle timeout does not count that time: a request
/// running longer than the timeout is answered, its kept connection stays usable,
/// and only then, idle, is it closed.
@Suite("Parked while running", .serialized, .timeLimit(.minutes(2)))
struct ParkedWhileRunningTests {
    static let idleTimeout = 0.3

    /// Runs `body` against a server on a fresh unix socket whose connections idle
    /// out after ``idleTimeout``; its responder runs `work` for `?long` only.
    static func withServer(
        level: ThreadingLevel, async: Bool, _ body: @escaping @Sendable (String) throws -> Void
    ) async throws {
        let directory = try TempDirectory.make()
        let path = "\(directory.path)/parked.sock"
        var limits = ConnectionLimits()
        limits.idleTimeout = idleTimeout
        let factory: HandlerFactory =
            async
            ? .async { request in
                if request.environ["QUERY_STRING"] == "long" { try await Task.sleep(for: .seconds(1)) }
                try request.write("done\n")
            }
            : .closure { request in
                if request.environ["QUERY_STRING"] == "long" { usleep(1_000_000) }
                try request.write("done\n")
            }
        let server = Server(
            factories: [.responder: factory], threadingLevel: level, address: .unix(path: path),
            connectionLimits: limits, handleSignals: false)
        let serving = Task { try await server.runUntilStopped() }
        defer { serving.cancel() }
        // Blocking client code off the cooperative pool: the async handlers need it.
        try await OffPool.run {
            try Net.waitUntilListening("unix:\(path)")
            try body("unix:\(path)")
        }
    }

    /// `ids` requests of 1 s each at once on one kept connection, then a quick one
    /// on it; then the connection idles out, not sooner than the timeout.
    static func check(_ address: String, ids: [UInt16]) throws {
        let connection = try FastCGIConnection(to: address, timeout: 10)
        func request(_ id: UInt16, _ query: String) -> [UInt8] {
            FastCGIRequest(
                requestID: id, params: [NameValuePair("REQUEST_METHOD", "GET"), NameValuePair("QUERY_STRING", query)],
                keepConnection: true
            ).encoded
        }
        try connection.write(ids.flatMap { request($0, "long") })
        for id in ids {
            #expect(String(decoding: try connection.readResponse(requestID: id).body, as: UTF8.self) == "done\n")
        }
        try connection.write(request(1, ""))
        #expect(String(decoding: try connection.readResponse().body, as: UTF8.self) == "done\n")
        let idleSince = Date()
        #expect(try connection.readRecord() == nil, "the idle connection is closed")
        #expect(Date().timeIntervalSince(idleSince) >= idleTimeout * 0.8, "closed before the idle timeout")
    }

    @Test("async handlers awaiting 1 s (idle timeout 0.3 s): answered on a kept connection, which then idles out")
    func asyncHandlers() async throws {
        try await Self.withServer(level: .multiplexed, async: true) { try Self.check($0, ids: [1, 2, 3]) }
    }

    @Test("blocking handlers running 1 s (idle timeout 0.3 s): the same, at levels 1 and 2")
    func blockingHandlers() async throws {
        try await Self.withServer(level: .perConnection, async: false) { try Self.check($0, ids: [1]) }
        try await Self.withServer(level: .multiplexed, async: false) { try Self.check($0, ids: [1, 2]) }
    }
}
