import FastCGIClient
import FastCGIWire
import Foundation
import Testing

/// What an app sent back for one scripted exchange, normalised so that the way a
/// stream is cut into records does not matter (libfcgi cuts at its 8 KiB buffer;
/// the comparison is of streams, their ends, and END_REQUEST).
struct Transcript: Equatable, CustomStringConvertible {
    enum Item: Equatable {
        /// A stream's bytes (consecutive records of one type and id merged).
        case stream(RecordType, UInt16, [UInt8])
        /// The empty record that ends a stream.
        case streamEnd(RecordType, UInt16)
        /// Any other record, whole.
        case record(Record)
    }

    var items: [Item] = []
    /// How the exchange ended: every expected END_REQUEST seen, the app closed, or
    /// nothing more came within the timeout.
    var ending = "complete"

    var description: String {
        items.map { item in
            switch item {
            case .stream(let type, let id, let bytes): "\(type)[\(id)] \(bytes.count) bytes"
            case .streamEnd(let type, let id): "\(type)[\(id)] end"
            case .record(let record): "\(record.type)[\(record.requestID)] \(record.content)"
            }
        }.joined(separator: ", ") + " — \(ending)"
    }

    mutating func append(_ record: Record) {
        let isStream = [RecordType.stdout, .stderr].contains(record.type)
        guard isStream else {
            items.append(.record(record))
            return
        }
        if record.content.isEmpty {
            items.append(.streamEnd(record.type, record.requestID))
        } else if case .stream(let type, let id, let bytes) = items.last, type == record.type, id == record.requestID {
            items[items.count - 1] = .stream(type, id, bytes + record.content)
        } else {
            items.append(.stream(record.type, record.requestID, record.content))
        }
    }

    /// Sends `bytes` and records the reply until the END_REQUESTs of `ids` (and
    /// `extraRecords` management replies) arrived, the app closed, or `timeout`.
    /// With `halfClose` the write side is shut down after `bytes` (the peer's
    /// read then ends).
    static func exchange(
        _ address: String, _ bytes: [UInt8], ids: Set<UInt16>, extraRecords: Int = 0, timeout: Double = 3,
        halfClose: Bool = false
    ) throws -> Transcript {
        let connection = try FastCGIConnection(to: address, timeout: .seconds(timeout))
        var transcript = Transcript()
        try? connection.write(bytes)
        if halfClose { connection.shutdownWrite() }
        var open = ids
        var extra = extraRecords
        while !open.isEmpty || extra > 0 {
            do {
                guard let record = try connection.readRecord() else {
                    transcript.ending = "closed"
                    return transcript
                }
                transcript.append(record)
                if record.type == .endRequest { open.remove(record.requestID) }
                if record.requestID == 0 { extra -= 1 }
            } catch {
                transcript.ending = error.kind == .timeout ? "timeout" : "closed"
                return transcript
            }
        }
        return transcript
    }
}

/// The same scripted exchanges sent to the C `reference-echo` (libfcgi alone) and
/// to the Swift `echo` at levels 0, 1 and 2; replies compared stream by stream.
/// Every difference is either absent or one of docs/DEVIATIONS.md, asserted here.
@Suite("Differential: Swift echo vs the C reference on libfcgi", .serialized, .timeLimit(.minutes(5)))
final class DifferentialTests {
    let reference: RunningApp
    let swift: [Int: RunningApp]

    init() throws {
        reference = try RunningApp("reference-echo", arguments: ["--workers", "4"])
        swift = try Dictionary(
            uniqueKeysWithValues: [0, 1, 2].map {
                ($0, try RunningApp("echo", arguments: ["--threading-level", "\($0)", "--workers", "4"]))
            })
    }

    /// Transcripts from the reference and each Swift level.
    func run(_ bytes: [UInt8], ids: Set<UInt16>, extraRecords: Int = 0, halfClose: Bool = false) throws -> (
        c: Transcript, swift: [Int: Transcript]
    ) {
        let c = try Transcript.exchange(reference.address, bytes, ids: ids, extraRecords: extraRecords, halfClose: halfClose)
        var out: [Int: Transcript] = [:]
        for (level, app) in swift {
            out[level] = try Transcript.exchange(
                app.address, bytes, ids: ids, extraRecords: extraRecords, halfClose: halfClose)
        }
        return (c, out)
    }

    func request(_ id: UInt16 = 1, keep: Bool = false, params: [String: String] = ["REQUEST_METHOD": "POST"], body: [UInt8])
        -> [UInt8]
    {
        Raw.begin(id, keep: keep, params: params) + Raw.stream(.stdin, id, body)
    }

    @Test("bodies of 0, 1, 65535, 65536 and 1 MiB bytes", arguments: [0, 1, 65535, 65536, 1 << 20])
    func bodies(size: Int) throws {
        let (c, swift) = try run(request(body: testBytes(size, seed: UInt64(size))), ids: [1])
        #expect(c.ending == "complete")
        for (level, transcript) in swift { #expect(transcript == c, "level \(level)") }
    }

    @Test("params: large values and a pair split across two PARAMS records")
    func params() throws {
        var pair: [UInt8] = []
        NameValueCoding.encode(NameValuePair("HTTP_X_BIG", String(repeating: "v", count: 100_000)), into: &pair)
        var bytes = Record.beginRequest(requestID: 1, role: .responder, keepConnection: false).encoded
        bytes += Record(type: .params, requestID: 1, content: NameValueCoding.encode([NameValuePair("ECHO_PARAMS", "1")])).encoded
        // The 100 KB pair straddles records: cut at 65535, and again inside the header.
        var rest = pair[...]
        while !rest.isEmpty {
            bytes += Record(type: .params, requestID: 1, content: Array(rest.prefix(65535))).encoded
            rest = rest.dropFirst(65535)
        }
        bytes += Record(type: .params, requestID: 1).encoded + Raw.stream(.stdin, 1, [])
        let (c, swift) = try run(bytes, ids: [1])
        #expect(c.ending == "complete")
        // Level 2 adds FCGI_ROLE to the params as libfcgi does, so all four agree.
        for (level, transcript) in swift { #expect(transcript == c, "level \(level)") }
    }

    @Test("a keep-conn sequence of three requests")
    func keepConnSequence() throws {
        let bytes = request(keep: true, body: [1]) + request(keep: true, body: [2, 2]) + request(keep: false, body: [3, 3, 3])
        // libfcgi loses pipelined requests (deviation 5): the reference answers only
        // the first; the Swift levels answer all three, each like the reference would.
        let (c, swift) = try run(bytes, ids: [1])
        let single = try Transcript.exchange(reference.address, request(keep: false, body: [1]), ids: [1])
        #expect(c.items == single.items)
        for (level, transcript) in swift {
            #expect(Array(transcript.items.prefix(single.items.count)) == single.items, "level \(level)")
        }
    }

    @Test("unknown management type without content: the same UNKNOWN_TYPE")
    func unknownType() throws {
        let bytes = Record(type: RecordType(rawValue: 77), requestID: 0).encoded + request(body: [4])
        let (c, swift) = try run(bytes, ids: [1], extraRecords: 1)
        #expect(c.items.first == .record(Record.unknownType(RecordType(rawValue: 77))))
        for (level, transcript) in swift { #expect(transcript == c, "level \(level)") }
    }

    @Test("GET_VALUES: libfcgi answers 1/1/0 only after the next record; we answer the table at once (deviation 2)")
    func getValues() throws {
        let query = Raw.getValues(["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"])
        let (c, swift) = try run(query + request(body: [5]), ids: [1], extraRecords: 1)
        guard case .record(let answer) = c.items.first else {
            Issue.record("no GET_VALUES_RESULT from the reference: \(c)")
            return
        }
        #expect(
            try NameValueCoding.decode(answer.content) == [
                NameValuePair("FCGI_MAX_CONNS", "1"), NameValuePair("FCGI_MAX_REQS", "1"), NameValuePair("FCGI_MPXS_CONNS", "0"),
            ])
        let expected: [Int: [NameValuePair]] = [
            0: [
                NameValuePair("FCGI_MAX_CONNS", "1"), NameValuePair("FCGI_MAX_REQS", "1"), NameValuePair("FCGI_MPXS_CONNS", "0"),
            ],
            1: [
                NameValuePair("FCGI_MAX_CONNS", "4"), NameValuePair("FCGI_MAX_REQS", "4"), NameValuePair("FCGI_MPXS_CONNS", "0"),
            ],
            2: [
                NameValuePair("FCGI_MAX_CONNS", "4"), NameValuePair("FCGI_MAX_REQS", "4"), NameValuePair("FCGI_MPXS_CONNS", "1"),
            ],
        ]
        for (level, transcript) in swift {
            guard case .record(let ours) = transcript.items.first else {
                Issue.record("level \(level): \(transcript)")
                continue
            }
            #expect(try NameValueCoding.decode(ours.content) == expected[level], "level \(level)")
            #expect(Array(transcript.items.dropFirst()) == Array(c.items.dropFirst()), "level \(level): the request is the same")
        }
        // A lone GET_VALUES: the reference does not answer (it blocks in read); we do.
        let lone = try Transcript.exchange(reference.address, query, ids: [], extraRecords: 1, timeout: 1)
        #expect(lone.ending == "timeout")
        for (level, app) in self.swift {
            #expect(try Transcript.exchange(app.address, query, ids: [], extraRecords: 1).ending == "complete", "level \(level)")
        }
    }

    @Test("multiplexing attempt: CANT_MPX_CONN at levels 0/1 as libfcgi; served at level 2")
    func multiplexAttempt() throws {
        let bytes =
            Raw.begin(1, keep: true, params: ["REQUEST_METHOD": "POST"]) + Raw.stream(.stdin, 1, [1], close: false)
            + Raw.begin(2, keep: true) + Raw.stream(.stdin, 2, []) + Raw.stream(.stdin, 1, [])
        let (c, swift) = try run(bytes, ids: [1, 2])
        let refused = Transcript.Item.record(
            Record.endRequest(requestID: 2, appStatus: 0, protocolStatus: .cantMultiplexConnection))
        #expect(c.items.contains(refused))
        #expect(swift[0]?.items.contains(refused) == true)
        #expect(swift[1]?.items.contains(refused) == true)
        #expect(
            swift[2]?.items.contains(.record(Record.endRequest(requestID: 2, appStatus: 0, protocolStatus: .requestComplete)))
                == true)
    }

    @Test("unknown role: libfcgi closes the connection; we answer UNKNOWN_ROLE (deviation 8)")
    func unknownRole() throws {
        let bytes =
            Record(type: .beginRequest, requestID: 1, content: [0, 9, 0, 0, 0, 0, 0, 0]).encoded
            + Raw.stream(.params, 1, []) + Raw.stream(.stdin, 1, [])
        let (c, swift) = try run(bytes, ids: [1])
        #expect(c.items.isEmpty && c.ending == "closed")
        for (level, transcript) in swift {
            #expect(
                transcript.items == [.record(Record.endRequest(requestID: 1, appStatus: 0, protocolStatus: .unknownRole))],
                "level \(level)")
        }
    }

    @Test("abort during stdin: libfcgi finishes the request; we end it at once (deviation 6)")
    func abort() throws {
        let bytes =
            Raw.begin(1, keep: true, params: ["REQUEST_METHOD": "POST"]) + Raw.stream(.stdin, 1, [1], close: false)
            + Record(type: .abortRequest, requestID: 1).encoded
        let (c, swift) = try run(bytes, ids: [1])
        func ends(_ t: Transcript) -> Int {
            t.items.filter { if case .record(let r) = $0 { r.type == .endRequest } else { false } }.count
        }
        // Measured: libfcgi takes the abort as the end of stdin and sends the whole
        // response; we end the request at once and drop its output.
        #expect(c.ending == "complete" && ends(c) == 1)
        #expect(c.items.contains { if case .stream(.stdout, 1, _) = $0 { true } else { false } })
        for (level, transcript) in swift {
            #expect(transcript.ending == "complete", "level \(level)")
            #expect(ends(transcript) == 1, "level \(level)")
            #expect(
                transcript.items == [
                    .streamEnd(.stdout, 1),
                    .record(Record.endRequest(requestID: 1, appStatus: 0, protocolStatus: .requestComplete)),
                ],
                "level \(level)")
        }
    }

    @Test("authorizer with no STDIN record (lighttpd, Apache), with and without keep-conn", arguments: [false, true])
    func authorizerWithoutStdin(keep: Bool) throws {
        for credentials in [false, true] {
            let params = credentials ? ["HTTP_AUTHORIZATION": "Basic eDp5", "REMOTE_USER": "x"] : [:]
            let (c, swift) = try run(Raw.begin(1, role: .authorizer, keep: keep, params: params), ids: [1])
            #expect(c.ending == "complete")
            for (level, transcript) in swift { #expect(transcript == c, "level \(level), credentials \(credentials)") }
        }
        guard keep else { return }
        // The kept connection serves the next request, a responder, as if the
        // authorizer had never been there (nothing left in the pipe).
        for (level, app) in swift {
            let connection = try FastCGIConnection(to: app.address, timeout: .seconds(5))
            defer { connection.close() }
            try connection.write(Raw.begin(1, role: .authorizer, keep: true))
            let denied = try Raw.readResponses(connection, ids: [1])[1]!
            #expect(String(decoding: denied.stdout, as: UTF8.self).hasPrefix("Status: 403"), "level \(level)")
            try connection.write(request(keep: true, body: [7, 7]))
            let echoed = try Raw.readResponses(connection, ids: [1])[1]!
            #expect(echoed.stdout.suffix(2) == [7, 7], "level \(level)")
            #expect(echoed.endCount == 1, "level \(level)")
        }
    }

    @Test("a web server that shuts down its write side after a whole request still gets the whole reply")
    func halfCloseAfterRequest() throws {
        for size in [10, 2_000_000] {
            let (c, swift) = try run(request(body: testBytes(size, seed: 5)), ids: [1], halfClose: true)
            #expect(c.ending == "complete")
            for (level, transcript) in swift { #expect(transcript == c, "level \(level), \(size) bytes") }
        }
    }

    @Test("a web server that shuts down its write side in the middle of stdin: the request ends, nothing hangs")
    func halfCloseDuringStdin() throws {
        let bytes = Raw.begin(1, keep: true, params: ["REQUEST_METHOD": "POST"]) + Raw.stream(.stdin, 1, [1, 2, 3], close: false)
        for (level, app) in swift {
            let transcript = try Transcript.exchange(app.address, bytes, ids: [1], halfClose: true)
            #expect(transcript.ending != "timeout", "level \(level): \(transcript)")
        }
    }

    @Test("a param sent twice: the first value, at every level, as FCGX_GetParam answers")
    func duplicateParams() throws {
        var block: [UInt8] = []
        for pair in [
            NameValuePair("ECHO_PARAM", "X_DUP"), NameValuePair("X_DUP", "first"), NameValuePair("X_DUP", "second"),
        ] {
            NameValueCoding.encode(pair, into: &block)
        }
        let bytes =
            Record.beginRequest(requestID: 1, role: .responder, keepConnection: false).encoded
            + Record(type: .params, requestID: 1, content: block).encoded + Record(type: .params, requestID: 1).encoded
            + Raw.stream(.stdin, 1, [])
        let (c, swift) = try run(bytes, ids: [1])
        #expect(c.items.contains(.stream(.stdout, 1, Array("Content-Type: text/plain\r\n\r\nfirst".utf8))))
        for (level, transcript) in swift { #expect(transcript == c, "level \(level)") }
    }

    @Test("malformed input (wrong version): both close without a reply")
    func wrongVersion() throws {
        let bytes: [UInt8] = [2, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        let (c, swift) = try run(bytes, ids: [1])
        #expect(c.items.isEmpty && c.ending == "closed")
        for (level, transcript) in swift { #expect(transcript == c, "level \(level)") }
    }
}
