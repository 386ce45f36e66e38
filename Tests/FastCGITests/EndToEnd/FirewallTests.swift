import FastCGIClient
import FastCGIWire
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// SPEC §4: no record from the network may crash the app or corrupt a request, at
/// any level. Each case names what a plain libfcgi 2.4.2 program does with the same
/// bytes (measured with a black-box suite; see docs/DEVIATIONS.md).
@Suite("Protocol firewall, levels 0, 1 and 2", .serialized, .timeLimit(.minutes(5)))
struct FirewallTests {
    static let levels = [0, 1, 2]

    func app(_ level: Int, _ extra: [String] = []) throws -> RunningApp {
        try RunningApp("echo", arguments: ["--threading-level", "\(level)", "--workers", "4"] + extra)
    }

    // plain libfcgi: the 4th repeat overflows a 64-byte stack buffer → "stack smashing detected", process dies.
    @Test("GET_VALUES repeating a name 4, 10, 1000 times: answered once, app survives", arguments: levels)
    func repeatedGetValues(level: Int) throws {
        let app = try app(level)
        for repeats in [4, 10, 1000] {
            let connection = try FastCGIConnection(to: app.address)
            let values = try connection.getValues(Array(repeating: "FCGI_MAX_CONNS", count: repeats))
            #expect(values == ["FCGI_MAX_CONNS": level == 0 ? "1" : "4"])
        }
        // In the middle of a request: the request still completes.
        let connection = try FastCGIConnection(to: app.address)
        try connection.write(
            Raw.begin(1, params: ["REQUEST_METHOD": "POST"]) + Raw.stream(.stdin, 1, Array("first ".utf8), close: false))
        try connection.write(Raw.getValues(Array(repeating: "FCGI_MPXS_CONNS", count: 1000)))
        try connection.write(Raw.stream(.stdin, 1, Array("half".utf8)))
        let reply = try connection.readResponse(requestID: 1)
        #expect(reply.body == Array("first half".utf8))
        #expect(app.child.isRunning)
    }

    // plain libfcgi: fixed 1/1/0, and only once another record arrives (it blocks in read).
    @Test("GET_VALUES answered at once from the defaults table and --value overrides", arguments: levels)
    func getValues(level: Int) throws {
        let names = ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS", "UNKNOWN_NAME"]
        let defaults = try app(level)
        let expected: [String: String] =
            switch level {
            case 0: ["FCGI_MAX_CONNS": "1", "FCGI_MAX_REQS": "1", "FCGI_MPXS_CONNS": "0"]
            case 1: ["FCGI_MAX_CONNS": "4", "FCGI_MAX_REQS": "4", "FCGI_MPXS_CONNS": "0"]
            default: ["FCGI_MAX_CONNS": "4", "FCGI_MAX_REQS": "4", "FCGI_MPXS_CONNS": "1"]
            }
        let connection = try FastCGIConnection(to: defaults.address, timeout: .seconds(2))
        #expect(try connection.getValues(names) == expected)
        // Between keep-conn requests on the same connection.
        _ = try connection.send(.http(keepConnection: true))
        #expect(try connection.getValues(names) == expected)
        _ = try connection.send(.http(keepConnection: true))

        let custom = try app(level, ["--value", "FCGI_MAX_CONNS=50", "--value", "X_CUSTOM=yes"])
        var values = expected
        values["FCGI_MAX_CONNS"] = "50"
        values["X_CUSTOM"] = "yes"
        #expect(try FastCGIConnection(to: custom.address).getValues(names + ["X_CUSTOM"]) == values)
    }

    // plain libfcgi: padding on an empty record is read as the next header: stdin silently lost.
    @Test("padding on empty records and on BEGIN_REQUEST", arguments: levels)
    func padding(level: Int) throws {
        let app = try app(level)
        let connection = try FastCGIConnection(to: app.address)
        var bytes = Raw.padded(.beginRequest, 1, [0, 1, 1, 0, 0, 0, 0, 0], padding: 8)
        bytes += Raw.padded(.params, 1, NameValueCoding.encode([NameValuePair("REQUEST_METHOD", "POST")]), padding: 3)
        bytes += Raw.padded(.params, 1, [], padding: 8)
        bytes += Raw.padded(.stdin, 1, Array("padded body".utf8), padding: 5)
        bytes += Raw.padded(.stdin, 1, [], padding: 7)
        try connection.write(bytes)
        let reply = try connection.readResponse(requestID: 1)
        #expect(reply.body == Array("padded body".utf8))
        #expect(reply.protocolStatus == .requestComplete)
    }

    // plain libfcgi: the empty record for another id makes it drop the next record.
    @Test("an empty record for an inactive id is ignored", arguments: levels)
    func inactiveID(level: Int) throws {
        let app = try app(level)
        let connection = try FastCGIConnection(to: app.address)
        var bytes = Raw.begin(1, params: ["REQUEST_METHOD": "POST"])
        bytes += Record(type: .stdin, requestID: 7).encoded
        bytes += Raw.stream(.stdin, 1, Array("kept".utf8))
        try connection.write(bytes)
        #expect(try connection.readResponse(requestID: 1).body == Array("kept".utf8))
    }

    // plain libfcgi: the reader discards what it read ahead: only the first is answered.
    @Test("5 pipelined requests on a kept connection are all answered", arguments: levels)
    func pipelined(level: Int) throws {
        let app = try app(level)
        let connection = try FastCGIConnection(to: app.address)
        var bytes: [UInt8] = []
        for i in 0..<5 {
            bytes += Raw.begin(1, params: ["REQUEST_METHOD": "POST"]) + Raw.stream(.stdin, 1, Array("request \(i)".utf8))
        }
        try connection.write(bytes)
        for i in 0..<5 {
            #expect(try connection.readResponse(requestID: 1).body == Array("request \(i)".utf8))
        }
    }

    // plain libfcgi: FCGI_ABORT_REQUEST is a protocol error: the connection is closed.
    @Test("abort during params and during stdin: exactly one END_REQUEST each", arguments: levels)
    func abort(level: Int) throws {
        let app = try app(level)
        let connection = try FastCGIConnection(to: app.address)
        // During params: BEGIN, part of the params, ABORT.
        var bytes = Record.beginRequest(requestID: 1, role: .responder, keepConnection: true).encoded
        bytes += Record(type: .params, requestID: 1, content: NameValueCoding.encode([NameValuePair("A", "1")])).encoded
        bytes += Record(type: .abortRequest, requestID: 1).encoded
        try connection.write(bytes)
        let first = try Raw.readResponses(connection, ids: [1])[1]!
        #expect(first.endCount == 1)
        // During stdin: a handler waiting for more body.
        try connection.write(Raw.begin(2, params: ["REQUEST_METHOD": "POST"]) + Raw.stream(.stdin, 2, [1, 2, 3], close: false))
        usleep(100_000)
        try connection.write(Record(type: .abortRequest, requestID: 2).encoded)
        let second = try Raw.readResponses(connection, ids: [2])[2]!
        #expect(second.endCount == 1)
        // The connection goes on serving.
        try connection.write(Raw.begin(3, params: ["REQUEST_METHOD": "POST"]) + Raw.stream(.stdin, 3, [9]))
        #expect(try connection.readResponse(requestID: 3).body == [9])
        // Nothing more for ids 1 and 2 arrives later (the aborted handler's output is dropped).
        try connection.write(Raw.getValues(["FCGI_MPXS_CONNS"]))
        let next = try #require(try connection.readRecord())
        #expect(next.type == .getValuesResult)
    }

    // plain libfcgi: the worker reading the connection is the one running the handler, so
    // GET_VALUES waits until the handler returns and libfcgi reads again, and ABORT then
    // is a protocol error. Here, at levels 0/1 a request whose input is complete runs on
    // the connection's own thread while the server's watcher reads the connection.
    @Test("a handler running with its input complete: GET_VALUES and ABORT are handled at once", arguments: levels)
    func busyHandler(level: Int) throws {
        let app = try app(level)
        let connection = try FastCGIConnection(to: app.address, timeout: .seconds(5))
        let sleeping = Raw.begin(1, params: ["REQUEST_METHOD": "POST", "ECHO_SLEEP_MS": "2000"]) + Raw.stream(.stdin, 1, [7])
        try connection.write(sleeping)
        usleep(200_000)
        let start = ContinuousClock.now
        try connection.write(Raw.getValues(["FCGI_MPXS_CONNS"]))
        let reply = try #require(try connection.readRecord())
        #expect(reply.type == .getValuesResult)
        try connection.write(Record(type: .abortRequest, requestID: 1).encoded)
        let aborted = try #require(try Raw.readResponses(connection, ids: [1])[1])
        #expect(aborted.endCount == 1)
        #expect(aborted.body.isEmpty)
        let waited = ContinuousClock.now - start
        #expect(waited < .milliseconds(1200), "GET_VALUES and the abort took \(waited) while the handler slept 2 s")
        // Once the handler returns, the same connection serves the next request.
        try connection.write(Raw.begin(2, params: ["REQUEST_METHOD": "POST"]) + Raw.stream(.stdin, 2, [9]))
        #expect(try connection.readResponse(requestID: 2).body == [9])
        #expect(app.child.isRunning)
    }

    // plain libfcgi: an unknown management type with content closes the connection.
    @Test("unknown management type gets UNKNOWN_TYPE, then a request on the same connection", arguments: levels)
    func unknownType(level: Int) throws {
        let app = try app(level)
        let connection = try FastCGIConnection(to: app.address)
        try connection.write(Record(type: RecordType(rawValue: 42), requestID: 0, content: Array("junk".utf8)).encoded)
        let reply = try #require(try connection.readRecord())
        #expect(reply == Record.unknownType(RecordType(rawValue: 42)))
        #expect(try connection.send(.http(method: "POST", body: [5], keepConnection: true)).body == [5])
    }

    // plain libfcgi: returns the request with role 99 to the program; no UNKNOWN_ROLE.
    @Test("unknown role answered FCGI_UNKNOWN_ROLE", arguments: levels)
    func unknownRole(level: Int) throws {
        let app = try RunningApp("hello", arguments: ["--threading-level", "\(level)"])
        let connection = try FastCGIConnection(to: app.address)
        var bytes = Record(type: .beginRequest, requestID: 1, content: [0, 99, 1, 0, 0, 0, 0, 0]).encoded
        bytes += Raw.begin(2, role: .authorizer)  // hello has no authorizer
        try connection.write(bytes)
        let replies = try Raw.readResponses(connection, ids: [1, 2])
        #expect(replies[1]?.protocolStatus == .unknownRole)
        #expect(replies[2]?.protocolStatus == .unknownRole)
        #expect(try connection.send(.http(keepConnection: true)).body == Array("Hello, world!\n".utf8))
    }

    @Test("levels 0/1: a second request during the first's input gets FCGI_CANT_MPX_CONN", arguments: [0, 1])
    func cantMultiplex(level: Int) throws {
        let app = try app(level)
        let connection = try FastCGIConnection(to: app.address)
        try connection.write(Raw.begin(1, params: ["REQUEST_METHOD": "POST"]) + Raw.stream(.stdin, 1, [1], close: false))
        try connection.write(Raw.begin(2) + Raw.stream(.stdin, 2, []))
        let refused = try connection.readResponse(requestID: 2)
        #expect(refused.protocolStatus == .cantMultiplexConnection)
        try connection.write(Raw.stream(.stdin, 1, [2]))
        #expect(try connection.readResponse(requestID: 1).body == [1, 2])
    }

    // plain libfcgi: each kept connection holds a worker for good: the 13th client starves.
    @Test("12 idle kept connections with 4 workers: a new client is served within 2 s", arguments: [1, 2])
    func idleConnectionsHoldNoWorker(level: Int) throws {
        let app = try app(level)
        var idle: [FastCGIConnection] = []
        for _ in 0..<12 {
            let connection = try FastCGIConnection(to: app.address)
            _ = try connection.send(.http(keepConnection: true))
            idle.append(connection)
        }
        let start = Date()
        let fresh = try FastCGIConnection(to: app.address, timeout: .seconds(2))
        #expect(try fresh.send(.http(method: "POST", body: [3])).body == [3])
        #expect(Date().timeIntervalSince(start) < 2)
        _ = idle
    }

    // plain libfcgi: unread STDIN records stay in the stream and break the next request.
    @Test("stdin a handler does not read does not leak into the next request", arguments: levels)
    func unreadStdin(level: Int) throws {
        let app = try RunningApp("hello", arguments: ["--threading-level", "\(level)"])
        let connection = try FastCGIConnection(to: app.address)
        for i in 0..<3 {
            let reply = try connection.send(
                .http(method: "POST", uri: "/?name=r\(i)", body: testBytes(200_000), keepConnection: true))
            #expect(String(decoding: reply.body, as: UTF8.self) == "Hello, r\(i)!\n")
        }
    }

    @Test(
        "hostile bytes close the connection; the app survives and serves the next client",
        arguments: levels)
    func hostile(level: Int) throws {
        let app = try app(level)
        let cases: [(String, [UInt8])] = [
            ("garbage", Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)),
            ("wrong version", [9, 1, 0, 1, 0, 8, 0, 0] + [UInt8](repeating: 0, count: 8)),
            (
                "name length 0x7fffffff",
                Record.beginRequest(requestID: 1, role: .responder, keepConnection: true).encoded
                    + Record(type: .params, requestID: 1, content: [0xFF, 0xFF, 0xFF, 0xFF, 1, 65]).encoded
                    + Record(type: .params, requestID: 1).encoded
            ),
            ("stdin before BEGIN", Raw.stream(.stdin, 1, [1, 2, 3]) + Raw.begin(1, keep: false) + Raw.stream(.stdin, 1, [])),
            ("duplicate BEGIN", Raw.begin(1) + Raw.begin(1)),
            ("BEGIN with id 0", Record.beginRequest(requestID: 0, role: .responder, keepConnection: false).encoded),
        ]
        for (name, bytes) in cases {
            let connection = try FastCGIConnection(to: app.address, timeout: .seconds(5))
            try? connection.write(bytes)
            connection.shutdownWrite()
            // Whatever it answers, it ends: a closed connection or an answer then close.
            var records = 0
            while (try? connection.readRecord()) != nil { records += 1 }
            #expect(records < 10, "\(name)")
            #expect(app.child.isRunning, "\(name)")
            #expect(try app.send(.http(method: "POST", body: [1])).body == [1], "\(name)")
        }
    }
}
