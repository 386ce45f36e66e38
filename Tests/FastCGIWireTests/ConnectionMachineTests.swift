import FastCGIWire
import Testing

@Suite("ConnectionMachine: the protocol firewall without sockets")
struct ConnectionMachineTests {
    static let values = ["FCGI_MAX_CONNS": "10", "FCGI_MAX_REQS": "10", "FCGI_MPXS_CONNS": "0"]

    func machine(
        multiplexing: Bool = false, roles: Set<Role> = [.responder, .filter], limits: ConnectionLimits = ConnectionLimits()
    ) -> ConnectionMachine {
        ConnectionMachine(multiplexing: multiplexing, roles: roles, managementValues: Self.values, limits: limits)
    }

    func request(_ id: UInt16, keep: Bool = true, role: Role = .responder, body: [UInt8] = Array("body".utf8)) -> [UInt8] {
        var out = Record.beginRequest(requestID: id, role: role, keepConnection: keep).encoded
        StreamWriter.appendParams([NameValuePair("A", "1")], requestID: id, into: &out)
        StreamWriter.append(body, type: .stdin, requestID: id, close: true, into: &out)
        return out
    }

    func records(_ actions: [ConnectionAction]) throws -> [Record] {
        var decoder = RecordDecoder()
        for case .send(let bytes) in actions { decoder.append(bytes) }
        var out: [Record] = []
        while let record = try decoder.next() { out.append(record) }
        return out
    }

    @Test("a whole request: start, stdin, end of stdin")
    func wholeRequest() {
        var m = machine()
        let actions = m.receive(request(1))
        #expect(
            actions == [
                .start(RequestStart(requestID: 1, role: .responder, keepConnection: true, params: [NameValuePair("A", "1")])),
                .stdin(requestID: 1, bytes: Array("body".utf8)), .stdin(requestID: 1, bytes: []),
            ])
    }

    @Test("every split of the byte stream gives the same actions")
    func splits() {
        let stream = request(1) + request(2)
        var whole = machine()
        let expected = whole.receive(stream)
        for split in 1..<stream.count {
            var m = machine()
            #expect(m.receive(stream[..<split]) + m.receive(stream[split...]) == expected)
        }
    }

    @Test("the rest of a body after its request ended is passed over; the next request is served")
    func bodyAfterEnd() {
        var m = machine()
        var begin = Record.beginRequest(requestID: 1, role: .responder, keepConnection: true).encoded
        StreamWriter.appendParams([NameValuePair("A", "1")], requestID: 1, into: &begin)
        StreamWriter.append(Array(repeating: 1, count: 100), type: .stdin, requestID: 1, close: false, into: &begin)
        #expect(m.receive(begin).count == 2)
        // The handler answered without reading: the request ends while its body
        // is still arriving.
        #expect(m.requestEnded(1).isEmpty)
        var rest: [UInt8] = []
        StreamWriter.append(Array(repeating: 2, count: 200_000), type: .stdin, requestID: 1, close: true, into: &rest)
        rest += request(1, body: Array("next".utf8))
        // In pieces that cut records anywhere: nothing of the old body comes out.
        var actions: [ConnectionAction] = []
        for offset in stride(from: 0, to: rest.count, by: 5000) {
            actions += receiveRaw(&m, rest[offset..<min(rest.count, offset + 5000)])
        }
        #expect(
            actions == [
                .start(RequestStart(requestID: 1, role: .responder, keepConnection: true, params: [NameValuePair("A", "1")])),
                .stdin(requestID: 1, bytes: Array("next".utf8)), .stdin(requestID: 1, bytes: []),
            ])
    }

    @Test("records of a pipelined request are held, not passed over, while the one before runs")
    func pipelinedNotSkipped() {
        var m = machine()
        let first = m.receive(request(1))
        #expect(first.count == 3)
        // Request 1's input is complete; a second request with the same id waits.
        #expect(m.receive(request(1, body: Array("second".utf8))).isEmpty)
        #expect(
            m.requestEnded(1) == [
                .start(RequestStart(requestID: 1, role: .responder, keepConnection: true, params: [NameValuePair("A", "1")])),
                .stdin(requestID: 1, bytes: Array("second".utf8)), .stdin(requestID: 1, bytes: []),
            ])
    }

    /// Feeds `bytes` the way a connection does: a raw read buffer, records taken in place.
    func receiveRaw(_ m: inout ConnectionMachine, _ bytes: ArraySlice<UInt8>) -> [ConnectionAction] {
        var actions: [ConnectionAction] = []
        bytes.withUnsafeBytes { m.receive($0, into: &actions) }
        return actions
    }

    @Test("raw read buffers: every split gives the same actions as one piece, big records included")
    func rawSplits() {
        let stream = request(1, body: Array(repeating: 9, count: 70000)) + request(2) + request(3, body: [])
        var whole = machine(multiplexing: true)
        let expected = whole.receive(stream)
        #expect(expected.count == 9)
        for split in [1, 5, 8, 9, 16, 17, 30, 65550, 65560, 70050, stream.count - 8, stream.count - 1] {
            var m = machine(multiplexing: true)
            #expect(receiveRaw(&m, stream[..<split]) + receiveRaw(&m, stream[split...]) == expected, "split at \(split)")
        }
        var m = machine(multiplexing: true)
        var bytewise: [ConnectionAction] = []
        for offset in stride(from: 0, to: stream.count, by: 7) {
            bytewise += receiveRaw(&m, stream[offset..<min(stream.count, offset + 7)])
        }
        // Seven bytes at a time, stdin arrives as whole records all the same.
        #expect(bytewise == expected)
    }

    @Test("GET_VALUES answered once per known name, repeats and unknown names dropped")
    func getValues() throws {
        var m = machine()
        let names = Array(repeating: "FCGI_MAX_CONNS", count: 1000) + ["FCGI_MPXS_CONNS", "NOPE"]
        let query = Record(type: .getValues, requestID: 0, content: NameValueCoding.encode(names.map { NameValuePair($0, "") }))
        let reply = try records(m.receive(query.encoded))
        #expect(reply.count == 1 && reply[0].type == .getValuesResult)
        #expect(
            try NameValueCoding.decode(reply[0].content) == [
                NameValuePair("FCGI_MAX_CONNS", "10"), NameValuePair("FCGI_MPXS_CONNS", "0"),
            ])
    }

    @Test("unknown management type gets UNKNOWN_TYPE and the connection goes on")
    func unknownType() throws {
        var m = machine()
        let actions = m.receive(Record(type: RecordType(rawValue: 99), requestID: 0, content: [1, 2, 3]).encoded + request(1))
        let reply = try records(actions)
        #expect(reply == [Record.unknownType(RecordType(rawValue: 99))])
        #expect(actions.contains(.stdin(requestID: 1, bytes: [])))
    }

    @Test("unknown role gets UNKNOWN_ROLE; its later records are ignored")
    func unknownRole() throws {
        var m = machine(roles: [.responder])
        let actions = m.receive(request(1, role: .authorizer) + request(2))
        #expect(try records(actions) == [Record.endRequest(requestID: 1, appStatus: 0, protocolStatus: .unknownRole)])
        #expect(actions.contains(.stdin(requestID: 2, bytes: [])))
        #expect(!actions.contains(.stdin(requestID: 1, bytes: [])))
    }

    @Test("levels 0/1: a second request during the first's input gets CANT_MPX_CONN")
    func cantMultiplex() throws {
        var m = machine()
        var stream = Record.beginRequest(requestID: 1, role: .responder, keepConnection: true).encoded
        StreamWriter.appendParams([], requestID: 1, into: &stream)
        stream += request(2)
        let actions = m.receive(stream)
        #expect(try records(actions) == [Record.endRequest(requestID: 2, appStatus: 0, protocolStatus: .cantMultiplexConnection)])
    }

    @Test("levels 0/1: pipelined requests are held until the previous one ends")
    func pipelining() {
        var m = machine()
        let first = m.receive(request(1) + request(2))
        #expect(first.count == 3, "only request 1's actions: \(first)")
        let second = m.requestEnded(1)
        #expect(
            second.first
                == .start(RequestStart(requestID: 2, role: .responder, keepConnection: true, params: [NameValuePair("A", "1")])))
        #expect(second.last == .stdin(requestID: 2, bytes: []))
    }

    @Test("level 2: requests interleave")
    func multiplexing() {
        var m = machine(multiplexing: true)
        var stream = Record.beginRequest(requestID: 1, role: .responder, keepConnection: true).encoded
        stream += Record.beginRequest(requestID: 2, role: .responder, keepConnection: true).encoded
        StreamWriter.appendParams([], requestID: 2, into: &stream)
        StreamWriter.appendParams([], requestID: 1, into: &stream)
        let actions = m.receive(stream)
        #expect(actions.count == 2)
        #expect(m.activeCount == 2)
    }

    @Test("abort: started request gets an abort action; one still in params is ended by the machine")
    func abort() throws {
        var m = machine(multiplexing: true)
        var stream = request(1)
        stream += Record.beginRequest(requestID: 2, role: .responder, keepConnection: true).encoded
        stream += Record(type: .abortRequest, requestID: 1).encoded
        stream += Record(type: .abortRequest, requestID: 2).encoded
        let actions = m.receive(stream)
        #expect(actions.contains(.abort(requestID: 1)))
        #expect(try records(actions) == [Record.endRequest(requestID: 2, appStatus: 0, protocolStatus: .requestComplete)])
    }

    @Test("without KEEP_CONN the connection closes when the request ends")
    func closeAfterRequest() {
        var m = machine()
        _ = m.receive(request(1, keep: false))
        let actions = m.requestEnded(1)
        guard case .close = actions.last else {
            Issue.record("expected close, got \(actions)")
            return
        }
    }

    @Test(
        "hostile input closes the connection with a typed reason",
        arguments: [
            (
                "wrong version", [2, 1, 0, 1, 0, 8, 0, 0] + [UInt8](repeating: 0, count: 8),
                .malformedRecord(.unsupportedVersion(2))
            ),
            ("short BEGIN", [1, 1, 0, 1, 0, 2, 0, 0, 0, 1], .outOfSequence(requestID: 1, .beginRequestLength(2))),
            (
                "stdin before params end",
                Record.beginRequest(requestID: 1, role: .responder, keepConnection: true).encoded
                    + Record(type: .stdin, requestID: 1, content: [1]).encoded,
                .outOfSequence(requestID: 1, .streamBeforeParams(.stdin))
            ),
            (
                "duplicate BEGIN",
                Record.beginRequest(requestID: 1, role: .responder, keepConnection: true).encoded
                    + Record.beginRequest(requestID: 1, role: .responder, keepConnection: true).encoded,
                .outOfSequence(requestID: 1, .beginRequestForActive)
            ),
            (
                "name length 0x7fffffff",
                Record.beginRequest(requestID: 1, role: .responder, keepConnection: true).encoded
                    + Record(type: .params, requestID: 1, content: [0xFF, 0xFF, 0xFF, 0xFF, 1, 65]).encoded
                    + Record(type: .params, requestID: 1).encoded,
                nil
            ),
        ] as [(String, [UInt8], CloseReason?)])
    func hostile(name: String, bytes: [UInt8], expected: CloseReason?) {
        var m = machine()
        let actions = m.receive(bytes)
        guard case .close(let reason) = actions.last else {
            Issue.record("\(name): expected close, got \(actions)")
            return
        }
        if let expected {
            #expect(reason == expected, "\(name)")
        } else if case .malformedParams(requestID: 1, _) = reason {
        } else {
            Issue.record("\(name): expected malformed params, got \(reason)")
        }
        #expect(!reason.isOrdinary, "\(name): a hostile close is logged as a warning")
        #expect(m.isClosed)
    }

    @Test("records for an inactive id and BEGIN with id 0 do not start anything")
    func ignored() throws {
        var m = machine()
        let stray = Record(type: .stdin, requestID: 9, content: [1]).encoded + Record(type: .params, requestID: 9).encoded
        #expect(m.receive(stray).isEmpty)
        let zero = Record.beginRequest(requestID: 0, role: .responder, keepConnection: true).encoded
        #expect(try records(m.receive(zero)) == [Record.unknownType(.beginRequest)])
    }

    @Test("level 2: requests over maxRequestsPerConnection get FCGI_OVERLOADED")
    func overloaded() throws {
        var limits = ConnectionLimits()
        limits.maxRequestsPerConnection = 2
        var m = machine(multiplexing: true, limits: limits)
        var stream: [UInt8] = []
        for id in UInt16(1)...3 { stream += Record.beginRequest(requestID: id, role: .responder, keepConnection: true).encoded }
        let actions = m.receive(stream)
        #expect(try records(actions) == [Record.endRequest(requestID: 3, appStatus: 0, protocolStatus: .overloaded)])
        #expect(actions.contains(.refused(requestID: 3, reason: .overloaded(limit: 2))))
        #expect(m.activeCount == 2)
    }

    @Test("a name-value length that overruns the params closes the connection")
    func overrun() {
        var m = machine()
        var stream = Record.beginRequest(requestID: 1, role: .responder, keepConnection: true).encoded
        stream += Record(type: .params, requestID: 1, content: [4, 200, 65, 66, 67, 68, 1]).encoded
        stream += Record(type: .params, requestID: 1).encoded
        guard case .close(let reason) = m.receive(stream).last else {
            Issue.record("expected close")
            return
        }
        guard case .malformedParams(requestID: 1, _) = reason else {
            Issue.record("expected malformed params, got \(reason)")
            return
        }
        #expect(!reason.isOrdinary && !reason.isLimit)
    }

    @Test("pipelined bytes over the limit close the connection")
    func pipelineLimit() {
        var limits = ConnectionLimits()
        limits.maxPipelinedBytes = 1000
        var m = machine(limits: limits)
        let stream = request(1) + request(2, body: [UInt8](repeating: 1, count: 5000))
        guard case .close(let reason) = m.receive(stream).last else {
            Issue.record("expected close")
            return
        }
        #expect(reason == .pipelineTooLarge(limit: 1000) && reason.isLimit)
        #expect("\(reason)" == "pipelined requests exceed the 1000-byte limit")
    }

    @Test("params over the limit close the connection")
    func paramsLimit() {
        var limits = ConnectionLimits()
        limits.maxParamsBytes = 100
        var m = machine(limits: limits)
        var stream = Record.beginRequest(requestID: 1, role: .responder, keepConnection: true).encoded
        for _ in 0..<3 { stream += Record(type: .params, requestID: 1, content: [UInt8](repeating: 1, count: 60)).encoded }
        guard case .close(let reason) = m.receive(stream).last else {
            Issue.record("expected close")
            return
        }
        #expect(reason == .paramsTooLarge(requestID: 1, limit: 100) && reason.isLimit)
    }

    /// BEGIN_REQUEST and PARAMS of an authorizer, with no STDIN (lighttpd, Apache).
    func authorizerRequest(_ id: UInt16, keep: Bool = true) -> [UInt8] {
        var out = Record.beginRequest(requestID: id, role: .authorizer, keepConnection: keep).encoded
        StreamWriter.appendParams([NameValuePair("A", "1")], requestID: id, into: &out)
        return out
    }

    @Test("awaitsInput: true from BEGIN until every stream of every request in flight ended")
    func awaitsInput() {
        var m = machine(multiplexing: true, roles: [.responder, .filter, .authorizer])
        #expect(!m.awaitsInput)
        var filter = Record.beginRequest(requestID: 2, role: .filter, keepConnection: true).encoded
        #expect(m.receive(filter).isEmpty)
        #expect(m.awaitsInput)  // in params
        filter = []
        StreamWriter.appendParams([NameValuePair("A", "1")], requestID: 2, into: &filter)
        StreamWriter.append([], type: .stdin, requestID: 2, close: true, into: &filter)
        _ = m.receive(filter)
        #expect(m.awaitsInput)  // its FCGI_DATA is still open
        _ = m.receive(Record(type: .data, requestID: 2, content: []).encoded)
        #expect(!m.awaitsInput)  // running, all its input in
        _ = m.receive(authorizerRequest(3))
        #expect(!m.awaitsInput)  // an authorizer's input ends with its params
        var open = Record.beginRequest(requestID: 4, role: .responder, keepConnection: true).encoded
        StreamWriter.appendParams([NameValuePair("A", "1")], requestID: 4, into: &open)
        open += Record(type: .stdin, requestID: 4, content: Array("part".utf8)).encoded
        _ = m.receive(open)
        #expect(m.awaitsInput)  // its stdin has not ended
        _ = m.requestEnded(4)
        #expect(!m.awaitsInput)
    }

    @Test("an authorizer's input is complete when its params end: no STDIN awaited")
    func authorizerWithoutStdin() {
        var m = machine(roles: [.responder, .authorizer])
        let actions = m.receive(authorizerRequest(1))
        #expect(
            actions == [
                .start(RequestStart(requestID: 1, role: .authorizer, keepConnection: true, params: [NameValuePair("A", "1")])),
                .stdin(requestID: 1, bytes: []),
            ])
        // The next request on the kept connection, right behind, is held until
        // the authorizer ends (pipelining), then started.
        #expect(m.receive(request(1)) == [])
        let replay = m.requestEnded(1)
        #expect(
            replay.first
                == .start(RequestStart(requestID: 1, role: .responder, keepConnection: true, params: [NameValuePair("A", "1")])))
        #expect(replay.last == .stdin(requestID: 1, bytes: []))
    }

    @Test("STDIN sent to an authorizer anyway (empty or not) is dropped; the connection goes on")
    func authorizerWithStdin() {
        var m = machine(roles: [.responder, .authorizer])
        var stream = authorizerRequest(1)
        StreamWriter.append(Array("ignored".utf8), type: .stdin, requestID: 1, close: true, into: &stream)
        let actions = m.receive(stream)
        #expect(actions.count == 2)
        #expect(actions.last == .stdin(requestID: 1, bytes: []))
        #expect(!m.isClosed)
        // Late STDIN after the end of the request: an inactive id, ignored.
        #expect(m.requestEnded(1) == [])
        #expect(m.receive(Record(type: .stdin, requestID: 1, content: []).encoded) == [])
        #expect(!m.isClosed)
    }

    @Test("an authorizer without FCGI_KEEP_CONN and without STDIN: closed after it ends")
    func authorizerWithoutKeep() {
        var m = machine(roles: [.authorizer])
        #expect(m.receive(authorizerRequest(3, keep: false)).count == 2)
        guard case .close = m.requestEnded(3).last else {
            Issue.record("expected close")
            return
        }
    }

    @Test("peer closed during stdin: the request is aborted and the connection closes")
    func peerClosedDuringStdin() {
        var m = machine()
        var stream = Record.beginRequest(requestID: 1, role: .responder, keepConnection: true).encoded
        StreamWriter.appendParams([NameValuePair("A", "1")], requestID: 1, into: &stream)
        StreamWriter.append([1, 2], type: .stdin, requestID: 1, close: false, into: &stream)
        _ = m.receive(stream)
        #expect(m.peerClosed() == [.abort(requestID: 1), .close(reason: .peerClosed)])
        #expect(m.isClosed)
    }

    @Test("peer closed (shut down its write side) after a whole request: it runs on, the close waits for its end")
    func peerClosedAfterRequest() {
        var m = machine()
        _ = m.receive(request(1) + request(1))  // the second is pipelined, held
        #expect(m.peerClosed() == [])
        #expect(m.readClosed && !m.isClosed)
        #expect(m.receive(request(2)) == [])
        // The held request is dropped with the peer's side; the connection closes.
        #expect(m.requestEnded(1) == [.close(reason: .peerClosed)])
    }

    @Test("peer closed with one request complete and one still receiving (level 2): only the second is aborted")
    func peerClosedMixed() {
        var m = machine(multiplexing: true)
        var stream = request(1)
        stream += Record.beginRequest(requestID: 2, role: .responder, keepConnection: true).encoded
        StreamWriter.appendParams([NameValuePair("A", "1")], requestID: 2, into: &stream)
        _ = m.receive(stream)
        #expect(m.peerClosed() == [.abort(requestID: 2)])
        #expect(m.requestEnded(2) == [])
        #expect(m.requestEnded(1) == [.close(reason: .peerClosed)])
    }
}
