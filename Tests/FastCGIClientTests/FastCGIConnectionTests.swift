import FastCGIClient
import FastCGIWire
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A scripted application on a unix socket: accepts one connection, reads
/// what the client sends, and answers with `reply` (bytes, then maybe a
/// close). No FastCGI library on this side: the bytes are the test's.
final class ScriptedPeer: @unchecked Sendable {
    let address: String
    private let listener: Int32
    private let directory: String
    private let done = DispatchSemaphore(value: 0)
    /// What the client sent before the peer answered (read once `finished()`).
    private(set) var received: [UInt8] = []

    /// `reply` is sent once `expect` bytes have arrived; then the peer closes
    /// unless `hold` (it stays silent until the test ends).
    init(reply: [UInt8], after expect: Int, hold: Bool = false) throws {
        directory = NSTemporaryDirectory() + "fcgi-client-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/peer.sock"
        address = "unix:" + path
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let fd = listener
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 4) == 0 else { throw CocoaError(.fileWriteUnknown) }
        let listening = listener
        Thread { [self] in
            let fd = accept(listening, nil, nil)
            var got: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while got.count < expect {
                let n = read(fd, &buffer, buffer.count)
                if n <= 0 { break }
                got += buffer[..<n]
            }
            received = got
            _ = reply.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if hold { done.wait() }
            close(fd)
            done.signal()
        }.start()
    }

    /// Waits for the peer to have answered and closed.
    func finished() { done.wait() }

    /// Lets a holding peer close.
    func release() { done.signal() }

    deinit {
        close(listener)
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite("FastCGIClient: requests on the wire, replies read back, failures as kinds")
struct FastCGIConnectionTests {
    static let end1 = Record.endRequest(requestID: 1, appStatus: 7, protocolStatus: .requestComplete).encoded

    @Test("a request is BEGIN, PARAMS, an empty PARAMS, STDIN, an empty STDIN (and DATA for a filter)")
    func encoding() throws {
        let request = FastCGIRequest(
            requestID: 3, role: .filter, params: [NameValuePair("A", "b")], stdin: Array("in".utf8), data: Array("d".utf8),
            keepConnection: true)
        var decoder = RecordDecoder()
        decoder.append(request.encoded)
        var records: [Record] = []
        while let record = try decoder.next() { records.append(record) }
        #expect(records.map(\.type) == [.beginRequest, .params, .params, .stdin, .stdin, .data, .data])
        #expect(records.allSatisfy { $0.requestID == 3 })
        #expect(records[0] == Record.beginRequest(requestID: 3, role: .filter, keepConnection: true))
        #expect(records[1].content == NameValueCoding.encode([NameValuePair("A", "b")]))
        #expect(records[3].content == Array("in".utf8) && records[5].content == Array("d".utf8))
        #expect(records[2].content.isEmpty && records[4].content.isEmpty && records[6].content.isEmpty)
    }

    @Test("a reply: stdout and stderr gathered, another request's records kept, the END's statuses, headers")
    func reply() throws {
        var reply: [UInt8] = []
        reply += Record(type: .stdout, requestID: 2, content: Array("other".utf8)).encoded
        reply += Record(type: .stdout, requestID: 1, content: Array("Status: 404\r\nX-A: 1\r\n\r\nno".utf8)).encoded
        reply += Record(type: .stderr, requestID: 1, content: Array("oops".utf8)).encoded
        reply += Self.end1
        reply += Record.endRequest(requestID: 2, appStatus: 0, protocolStatus: .requestComplete).encoded
        let peer = try ScriptedPeer(reply: reply, after: 1)
        let connection = try FastCGIConnection(to: peer.address, timeout: .seconds(5))
        try connection.write([0])
        let first = try connection.readResponse(requestID: 1)
        #expect(first.body == Array("no".utf8) && first.stderr == Array("oops".utf8))
        #expect(first.appStatus == 7 && first.protocolStatus == .requestComplete)
        #expect(first.headers.map(\.name) == ["Status", "X-A"] && first.header("x-a") == "1")
        let second = try connection.readResponse(requestID: 2)
        #expect(second.stdout == Array("other".utf8))
        peer.finished()
        #expect(try connection.readRecord() == nil, "a clean close between records")
    }

    @Test("failures are kinds: bad address, refused, closed mid-record, not FastCGI, timeout")
    func failures() throws {
        #expect { try FastCGIConnection(to: "nonsense") } throws: { ($0 as? ClientError)?.kind == .badAddress }
        #expect { try FastCGIConnection(to: "unix:/nonexistent/peer.sock") } throws: {
            ($0 as? ClientError)?.kind == .connectionRefused
        }

        let cut = try ScriptedPeer(reply: Array(Self.end1.prefix(5)), after: 1)
        let cutConnection = try FastCGIConnection(to: cut.address, timeout: .seconds(5))
        try cutConnection.write([0])
        #expect { try cutConnection.readResponse() } throws: { ($0 as? ClientError)?.kind == .connectionClosed }

        let garbage = try ScriptedPeer(reply: Array("HTTP/1.1 200 OK\r\n\r\n".utf8), after: 1)
        let garbageConnection = try FastCGIConnection(to: garbage.address, timeout: .seconds(5))
        try garbageConnection.write([0])
        #expect { try garbageConnection.readResponse() } throws: { ($0 as? ClientError)?.kind == .protocolViolation }

        let silent = try ScriptedPeer(reply: [], after: 1, hold: true)
        defer { silent.release() }
        let silentConnection = try FastCGIConnection(to: silent.address, timeout: .milliseconds(100))
        try silentConnection.write([0])
        #expect { try silentConnection.readResponse() } throws: {
            ($0 as? ClientError)?.kind == .timeout && "\($0)".contains("0.1 seconds")
        }
    }

    @Test("GET_VALUES: the query names each variable; the answer comes back as a dictionary")
    func getValues() throws {
        let answer = Record(
            type: .getValuesResult, requestID: 0,
            content: NameValueCoding.encode([NameValuePair("FCGI_MAX_CONNS", "10"), NameValuePair("FCGI_MPXS_CONNS", "1")]))
        let query = Record(
            type: .getValues, requestID: 0,
            content: NameValueCoding.encode([NameValuePair("FCGI_MAX_CONNS", ""), NameValuePair("FCGI_MPXS_CONNS", "")]))
        let peer = try ScriptedPeer(reply: answer.encoded, after: query.encoded.count)
        let connection = try FastCGIConnection(to: peer.address, timeout: .seconds(5))
        #expect(
            try connection.getValues(["FCGI_MAX_CONNS", "FCGI_MPXS_CONNS"]) == ["FCGI_MAX_CONNS": "10", "FCGI_MPXS_CONNS": "1"])
        peer.finished()
        #expect(peer.received == query.encoded)
    }
}
