import FastCGIClient
import FastCGIWire
import Foundation
import Testing

/// A connection whose requests have all their input gives its thread back while
/// they run (issue 19), and the idle timeout does not count that time: a request
/// running longer than the timeout is answered, its kept connection stays usable,
/// and only then, idle, is it closed.
///
/// The servers are example apps in their own processes: an async server inside
/// the test process would share the cooperative pool with tests that block it.
@Suite("Parked while running", .timeLimit(.minutes(2)))
struct ParkedWhileRunningTests {
    static let idleTimeout = 0.3

    /// What one app is asked, and answers, for a request running 1 s and a quick one.
    struct Workload: Sendable {
        var app: String
        var slow: [NameValuePair]
        var slowAnswer: String
        var quick: [NameValuePair]
        var quickAnswer: String
    }

    static let asyncSleep = Workload(
        app: "async-hello", slow: [NameValuePair("QUERY_STRING", "delay_ms=1000")], slowAnswer: "Hello, world!\n",
        quick: [NameValuePair("QUERY_STRING", "name=you")], quickAnswer: "Hello, you!\n")
    static let blockingSleep = Workload(
        app: "echo", slow: [NameValuePair("ECHO_SLEEP_MS", "1000"), NameValuePair("ECHO_PARAM", "ECHO_SLEEP_MS")],
        slowAnswer: "1000", quick: [NameValuePair("ECHO_PARAM", "ECHO_SLEEP_MS")], quickAnswer: "(absent)")

    /// `ids` requests of 1 s each at once on one kept connection to a fresh `app`
    /// at `level`, then a quick one on it; then the connection idles out, not
    /// sooner than the timeout.
    static func check(_ work: Workload, level: Int, ids: [UInt16]) throws {
        let app = try RunningApp(
            work.app, unix: true, arguments: ["--threading-level", "\(level)", "--idle-timeout", "\(idleTimeout)"])
        let connection = try FastCGIConnection(to: app.address, timeout: .seconds(10))
        func request(_ id: UInt16, _ params: [NameValuePair]) -> [UInt8] {
            FastCGIRequest(
                requestID: id, params: [NameValuePair("REQUEST_METHOD", "GET")] + params, keepConnection: true
            ).encoded
        }
        try connection.write(ids.flatMap { request($0, work.slow) })
        for id in ids {
            let reply = try connection.readResponse(requestID: id)
            #expect(reply.protocolStatus == .requestComplete)
            #expect(String(decoding: reply.body, as: UTF8.self) == work.slowAnswer)
        }
        try connection.write(request(1, work.quick))
        let quick = String(decoding: try connection.readResponse().body, as: UTF8.self)
        #expect(quick == work.quickAnswer)
        let idleSince = Date()
        #expect(try connection.readRecord() == nil, "the idle connection is closed")
        #expect(Date().timeIntervalSince(idleSince) >= idleTimeout * 0.8, "closed before the idle timeout")
    }

    @Test("async handlers awaiting 1 s (idle timeout 0.3 s): answered on a kept connection, which then idles out")
    func asyncHandlers() throws {
        try Self.check(Self.asyncSleep, level: 2, ids: [1, 2, 3])
    }

    @Test(
        "blocking handlers running 1 s (idle timeout 0.3 s): the same, at levels 1 and 2",
        arguments: [(1, [UInt16(1)]), (2, [1, 2])])
    func blockingHandlers(level: Int, ids: [UInt16]) throws {
        try Self.check(Self.blockingSleep, level: level, ids: ids)
    }
}
