import FastCGIWire
import Testing

@Suite("Record header and name-value coding")
struct RecordCodingTests {
    @Test("header round trip")
    func headerRoundTrip() {
        let header = RecordHeader(type: .stdin, requestID: 0x1234, contentLength: 0xBEEF, paddingLength: 5)
        var bytes: [UInt8] = []
        header.encode(into: &bytes)
        #expect(bytes == [1, 5, 0x12, 0x34, 0xBE, 0xEF, 5, 0])
        #expect(RecordHeader(decoding: bytes) == header)
        #expect(RecordHeader(decoding: bytes.prefix(7)) == nil)
    }

    @Test(
        "the in-place BEGIN and END builders write the same bytes as the Record values",
        arguments: [UInt16(0), 1, 0x1234, .max])
    func inPlaceBuilders(id: UInt16) {
        for status in [ProtocolStatus.requestComplete, .cantMultiplexConnection, .overloaded, .unknownRole] {
            var built: [UInt8] = [9]  // appended after what is there
            StreamWriter.appendEndRequest(requestID: id, protocolStatus: status, into: &built)
            #expect(built == [9] + Record.endRequest(requestID: id, appStatus: 0, protocolStatus: status).encoded)
        }
        for role in Role.allCases {
            for keep in [false, true] {
                var built: [UInt8] = []
                StreamWriter.appendBeginWithoutParams(requestID: id, role: role, keepConnection: keep, into: &built)
                var expected = Record.beginRequest(requestID: id, role: role, keepConnection: keep).encoded
                StreamWriter.append([UInt8](), type: .params, requestID: id, close: true, into: &expected)
                #expect(built == expected)
            }
        }
    }

    @Test("padding brings content to a multiple of 8", arguments: [(0, 0), (1, 7), (7, 1), (8, 0), (9, 7), (65535, 1)])
    func padding(length: Int, expected: UInt8) {
        #expect(RecordHeader.padding(for: length) == expected)
        #expect((length + Int(RecordHeader.padding(for: length))) % 8 == 0)
    }

    @Test("name-value lengths: 1 byte below 128, 4 bytes from 128", arguments: [0, 1, 127, 128, 300, 65536])
    func nameValueRoundTrip(length: Int) throws {
        let pair = NameValuePair(
            name: Array(repeating: 0x41, count: length), value: Array(repeating: 0x42, count: length / 2 + 1))
        let block = NameValueCoding.encode([pair, NameValuePair("A", "b")])
        let expectedPrefix = length < 128 ? 1 : 4
        #expect(block.count == expectedPrefix + (length / 2 + 1 < 128 ? 1 : 4) + length + length / 2 + 1 + 4)
        #expect(try NameValueCoding.decode(block) == [pair, NameValuePair("A", "b")])
    }

    @Test("truncated and oversized name-value blocks are typed errors")
    func nameValueErrors() {
        #expect(throws: NameValueError.truncated) { try NameValueCoding.decode([5, 1, 0x41]) }
        #expect(throws: NameValueError.truncated) { try NameValueCoding.decode([0x80, 0, 1]) }
        #expect(throws: NameValueError.tooLong(length: 0x7fff_ffff, limit: 1 << 20)) {
            try NameValueCoding.decode([0xFF, 0xFF, 0xFF, 0xFF, 0, 0x41], maxLength: 1 << 20)
        }
    }

    @Test("stream writer cuts into 65535-byte records, padded, with an empty closing record")
    func streamWriter() throws {
        let body = Array(repeating: UInt8(7), count: 65535 + 10)
        var out: [UInt8] = []
        StreamWriter.append(body, type: .stdout, requestID: 3, close: true, into: &out)
        var decoder = RecordDecoder()
        decoder.append(out)
        let first = try #require(try decoder.next())
        let second = try #require(try decoder.next())
        let end = try #require(try decoder.next())
        #expect(first.content.count == 65535 && second.content.count == 10 && end.content.isEmpty)
        #expect([first, second, end].allSatisfy { $0.type == .stdout && $0.requestID == 3 })
        #expect(out.count == (8 + 65535 + 1) + (8 + 10 + 6) + 8)
        #expect(try decoder.next() == nil)
    }

    @Test("decoder gives the same records for every split of a stream")
    func decoderSplits() throws {
        var stream = Record.beginRequest(requestID: 1, role: .responder, keepConnection: true).encoded
        StreamWriter.appendParams(
            [NameValuePair("A", "1"), NameValuePair("LONG", String(repeating: "x", count: 200))], requestID: 1, into: &stream)
        StreamWriter.append(Array("body".utf8), type: .stdin, requestID: 1, close: true, into: &stream)
        var whole = RecordDecoder()
        whole.append(stream)
        var expected: [Record] = []
        while let record = try whole.next() { expected.append(record) }
        #expect(expected.count == 5)
        for split in 1..<stream.count {
            var decoder = RecordDecoder()
            var records: [Record] = []
            decoder.append(stream[..<split])
            while let record = try decoder.next() { records.append(record) }
            decoder.append(stream[split...])
            while let record = try decoder.next() { records.append(record) }
            #expect(records == expected, "split at \(split)")
        }
        var bytewise = RecordDecoder()
        var records: [Record] = []
        for byte in stream {
            bytewise.append([byte])
            while let record = try bytewise.next() { records.append(record) }
        }
        #expect(records == expected)
    }

    @Test("a skipped record is passed over whole, at every split, even before its content arrives")
    func decoderSkips() throws {
        var stream: [UInt8] = []
        StreamWriter.append(Array(repeating: 7, count: 70000), type: .stdin, requestID: 1, close: false, into: &stream)
        let kept = Record(type: .stdin, requestID: 2, content: Array("kept".utf8))
        kept.encode(into: &stream)
        // Skip every record of request 1, whatever has arrived of it.
        func take(_ decoder: inout RecordDecoder, into records: inout [Record]) throws {
            while let header = try decoder.nextHeader() {
                if header.requestID == 1 {
                    decoder.skipNext()
                    continue
                }
                guard let record = try decoder.next() else { break }
                records.append(record)
            }
        }
        func decode(_ chunks: [ArraySlice<UInt8>]) throws -> [Record] {
            var decoder = RecordDecoder()
            var records: [Record] = []
            for chunk in chunks {
                decoder.append(chunk)
                try take(&decoder, into: &records)
            }
            #expect(decoder.bufferedCount == 0)
            return records
        }
        #expect(try decode([stream[...]]) == [kept])
        for split in [1, 7, 8, 9, 100, 65535, 65544, 65551, 70000, stream.count - 9, stream.count - 1] {
            #expect(try decode([stream[..<split], stream[split...]]) == [kept], "split at \(split)")
        }
        // Raw buffers (the connection's path) drop the skipped bytes as they come.
        var decoder = RecordDecoder()
        var records: [Record] = []
        for offset in stride(from: 0, to: stream.count, by: 4096) {
            stream[offset..<min(stream.count, offset + 4096)].withUnsafeBytes { decoder.append($0) }
            try take(&decoder, into: &records)
            #expect(decoder.bufferedCount < 4096 + 8, "nothing of a skipped record is kept")
        }
        #expect(records == [kept])
    }

    @Test("property: random records survive encode, any split, decode", arguments: 0..<20)
    func randomRecords(seed: Int) throws {
        var rng = SplitMix(seed: UInt64(seed))
        var records: [Record] = []
        var stream: [UInt8] = []
        for _ in 0..<(1 + rng.next() % 30) {
            let length = Int(rng.next() % 4 == 0 ? rng.next() % 65536 : rng.next() % 300)
            let record = Record(
                type: RecordType(rawValue: UInt8(truncatingIfNeeded: rng.next())),
                requestID: UInt16(truncatingIfNeeded: rng.next()),
                content: (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            records.append(record)
            record.encode(into: &stream)
            #expect(stream.count % 8 == 0, "padded to 8")
        }
        var decoder = RecordDecoder()
        var decoded: [Record] = []
        var offset = 0
        while offset < stream.count {
            let chunk = 1 + Int(rng.next() % 9000)
            decoder.append(stream[offset..<min(stream.count, offset + chunk)])
            offset += chunk
            while let record = try decoder.next() { decoded.append(record) }
        }
        #expect(decoded == records)
        #expect(decoder.bufferedCount == 0)
    }

    @Test("property: random name-value blocks round-trip", arguments: 0..<20)
    func randomPairs(seed: Int) throws {
        var rng = SplitMix(seed: UInt64(seed) &+ 1000)
        let pairs = (0..<(rng.next() % 20)).map { _ in
            NameValuePair(
                name: (0..<(rng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) },
                value: (0..<(rng.next() % 3 == 0 ? rng.next() % 70000 : rng.next() % 100)).map { _ in
                    UInt8(truncatingIfNeeded: rng.next())
                })
        }
        #expect(try NameValueCoding.decode(NameValueCoding.encode(pairs)) == pairs)
    }

    @Test("decoder rejects a wrong version")
    func wrongVersion() {
        var decoder = RecordDecoder()
        decoder.append([2, 1, 0, 1, 0, 0, 0, 0])
        #expect(throws: WireError.unsupportedVersion(2)) { try decoder.next() }
    }

    @Test("endpoint parsing")
    func endpoints() throws {
        #expect(try Endpoint(parsing: "127.0.0.1:9000") == .tcp(host: "127.0.0.1", port: 9000))
        #expect(try Endpoint(parsing: ":9000") == .tcp(host: "", port: 9000))
        #expect(try Endpoint(parsing: "[::1]:9000") == .tcp(host: "::1", port: 9000))
        #expect(try Endpoint(parsing: "unix:/run/app.sock") == .unix(path: "/run/app.sock"))
        #expect(throws: EndpointError.self) { try Endpoint(parsing: "localhost") }
        let literal: Endpoint = "unix:/run/app/app.sock"
        #expect(literal == .unix(path: "/run/app/app.sock"))
        #expect(throws: EndpointError.self) { try Endpoint(parsing: "host:99999") }
        #expect(throws: EndpointError.self) { try Endpoint(parsing: "unix:") }
    }
}

/// A small deterministic generator for property tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
