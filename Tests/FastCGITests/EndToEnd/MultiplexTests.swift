import FastCGIClient
import FastCGIWire
import Foundation
import Testing

/// Threading level 2: many requests multiplexed on one connection (SPEC §3).
@Suite("Level 2 multiplexing", .serialized, .timeLimit(.minutes(5)))
struct MultiplexTests {
    /// Interleaves the records of `count` requests: all BEGINs, then PARAMS and
    /// STDIN chunks round-robin.
    func interleaved(_ count: Int, bodies: [[UInt8]]) -> [UInt8] {
        var perRequest: [[[UInt8]]] = []
        for i in 0..<count {
            let id = UInt16(i + 1)
            var records: [[UInt8]] = [Record.beginRequest(requestID: id, role: .responder, keepConnection: true).encoded]
            records.append(
                Record(type: .params, requestID: id, content: NameValueCoding.encode([NameValuePair("REQUEST_METHOD", "POST")]))
                    .encoded)
            records.append(
                Record(type: .params, requestID: id, content: NameValueCoding.encode([NameValuePair("N", "\(i)")])).encoded)
            records.append(Record(type: .params, requestID: id).encoded)
            var body = bodies[i][...]
            while !body.isEmpty {
                records.append(Record(type: .stdin, requestID: id, content: Array(body.prefix(1000))).encoded)
                body = body.dropFirst(1000)
            }
            records.append(Record(type: .stdin, requestID: id).encoded)
            perRequest.append(records)
        }
        var out: [UInt8] = []
        var index = 0
        while perRequest.contains(where: { index < $0.count }) {
            for records in perRequest where index < records.count { out += records[index] }
            index += 1
        }
        return out
    }

    @Test("2 and 50 interleaved requests on one connection, each answered correctly", arguments: [2, 50])
    func interleavedRequests(count: Int) throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "2"])
        let connection = try FastCGIConnection(to: app.address)
        let bodies = (0..<count).map { testBytes(500 + $0 * 97, seed: UInt64($0)) }
        try connection.write(interleaved(count, bodies: bodies))
        let replies = try Raw.readResponses(connection, ids: Set((1...count).map { UInt16($0) }))
        for i in 0..<count {
            let reply = try #require(replies[UInt16(i + 1)])
            #expect(reply.body == bodies[i], "request \(i + 1)")
            #expect(reply.endCount == 1)
        }
    }

    @Test("a slow handler does not delay the others on the same connection")
    func slowHandler() throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "2"])
        let connection = try FastCGIConnection(to: app.address)
        let start = Date()
        try connection.write(
            Raw.begin(1, params: ["REQUEST_METHOD": "POST", "ECHO_SLEEP_MS": "3000"]) + Raw.stream(.stdin, 1, [1]))
        try connection.write(Raw.begin(2, params: ["REQUEST_METHOD": "POST"]) + Raw.stream(.stdin, 2, [2]))
        let fast = try connection.readResponse(requestID: 2)
        #expect(fast.body == [2])
        #expect(Date().timeIntervalSince(start) < 2, "the fast request did not wait for the slow one")
        #expect(try connection.readResponse(requestID: 1).body == [1])
    }

    @Test("requests that arrive together run on the connection's thread in turn; a slow one does not hold the rest")
    func slowHandlerInBatch() throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "2"])
        let connection = try FastCGIConnection(to: app.address)
        // One write: the serving thread queues all three and runs the slow one
        // first; the poller hands the other two to pool threads once it is held up.
        let start = Date()
        try connection.write(
            Raw.begin(1, params: ["REQUEST_METHOD": "POST", "ECHO_SLEEP_MS": "3000"]) + Raw.stream(.stdin, 1, [1])
                + Raw.begin(2, params: ["REQUEST_METHOD": "POST"]) + Raw.stream(.stdin, 2, [2])
                + Raw.begin(3, params: ["REQUEST_METHOD": "POST"]) + Raw.stream(.stdin, 3, [3]))
        let responses = try Raw.readResponses(connection, ids: [2, 3])
        #expect(responses[2]?.body == [2] && responses[3]?.body == [3])
        #expect(Date().timeIntervalSince(start) < 2, "the fast requests did not wait for the slow one")
        #expect(try connection.readResponse(requestID: 1).body == [1])
    }

    @Test("abort of one request leaves the others running")
    func abortOne() throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "2"])
        let connection = try FastCGIConnection(to: app.address)
        try connection.write(Raw.begin(1, params: ["REQUEST_METHOD": "POST"]) + Raw.stream(.stdin, 1, [1], close: false))
        try connection.write(Raw.begin(2, params: ["REQUEST_METHOD": "POST"]) + Raw.stream(.stdin, 2, [2], close: false))
        try connection.abort(requestID: 1)
        let aborted = try Raw.readResponses(connection, ids: [1])[1]!
        #expect(aborted.endCount == 1)
        try connection.write(Raw.stream(.stdin, 2, [3]))
        let other = try connection.readResponse(requestID: 2)
        #expect(other.body == [2, 3])
    }

    @Test("filter: DATA interleaved with STDIN, data read first, no deadlock", arguments: [0, 1, 2])
    func filterInterleaved(level: Int) throws {
        let app = try RunningApp("filter", arguments: ["--threading-level", "\(level)"])
        let connection = try FastCGIConnection(to: app.address)
        var bytes = Raw.begin(1, role: .filter, params: ["SCRIPT_FILENAME": "/f"])
        for i in 0..<20 {
            bytes += Raw.stream(.stdin, 1, Array("s\(i) ".utf8), close: false)
            bytes += Raw.stream(.data, 1, Array("d\(i) ".utf8), close: false)
        }
        bytes += Raw.stream(.data, 1, []) + Raw.stream(.stdin, 1, [])
        try connection.write(bytes)
        let reply = try connection.readResponse(requestID: 1)
        let expected = (0..<20).map { "D\($0) " }.joined()
        #expect(String(decoding: reply.body, as: UTF8.self) == expected)
        let stdinLength = (0..<20).map { "s\($0) ".utf8.count }.reduce(0, +)
        #expect(reply.header("X-Stdin-Bytes") == "\(stdinLength)")
    }

    @Test("many connections each multiplexing, from parallel clients")
    func parallelConnections() throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "2"])
        let failures = Failures()
        onParallelThreads(8) { c in
            do {
                let connection = try FastCGIConnection(to: app.address)
                let bodies = (0..<10).map { testBytes(3000 + $0, seed: UInt64(c * 100 + $0)) }
                try connection.write(interleaved(10, bodies: bodies))
                let replies = try Raw.readResponses(connection, ids: Set((1...10).map { UInt16($0) }))
                for i in 0..<10 where replies[UInt16(i + 1)]?.body != bodies[i] { failures.add("conn \(c) req \(i + 1)") }
            } catch {
                failures.add("conn \(c): \(error)")
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all)")
    }
}
