import FastCGIClient
import FastCGIWire
import Foundation
import Testing

@testable import FastCGI

/// Decoding with the system's `gzip` (an independent implementation of RFC 1952).
enum Gunzip {
    /// The decompressed bytes, and whether gzip accepted the stream as complete
    /// (trailer with matching CRC-32 and length).
    static func decode(_ compressed: [UInt8]) throws -> (output: [UInt8], complete: Bool) {
        let file = try TempDirectory.make().appendingPathComponent("body.gz")
        try Data(compressed).write(to: file)
        let result = try ChildProcess.run("gzip", ["-dc"], stdin: file, timeout: 60)
        return ([UInt8](result.stdout), result.status == 0)
    }
}

/// Splits a CGI-style response into its header block and its body.
func splitResponse(_ bytes: [UInt8]) -> (headers: String, body: [UInt8]) {
    let separator: [UInt8] = Array("\r\n\r\n".utf8)
    var i = 0
    while i + separator.count <= bytes.count {
        if Array(bytes[i..<i + separator.count]) == separator {
            return (String(decoding: bytes[..<i], as: UTF8.self), Array(bytes[(i + separator.count)...]))
        }
        i += 1
    }
    return (String(decoding: bytes, as: UTF8.self), [])
}

@Suite("GZipRequest: negotiation, headers, streaming compression")
struct GZipRequestTests {
    @Test(
        "Accept-Encoding negotiation",
        arguments: [
            (nil, false), ("", false), ("gzip", true), ("GZIP", true), ("gzip, deflate, br", true),
            ("deflate, br", false), ("identity", false), ("gzip;q=0", false), ("gzip; q=0.0", false),
            ("gzip;q=0.000", false), ("gzip;q=0.001", true), ("deflate, gzip;q=0.5", true), ("gzip ; Q=1", true),
            ("x-gzip", true), ("*", true), ("*;q=0", false), ("*, gzip;q=0", false), ("br;q=1, *;q=0.1", true),
            ("gzip;q=abc", false), ("gzip;q=2", false), ("deflate;q=0, gzip", true), ("gzip;q=0, gzip", true),
        ] as [(String?, Bool)])
    func negotiation(header: String?, accepted: Bool) {
        #expect(AcceptEncoding.acceptsGzip(header) == accepted, "Accept-Encoding: \(header ?? "(absent)")")
    }

    private func request(_ acceptEncoding: String?) -> (MemoryTransport, GZipRequest) {
        var params: [String: String] = ["REQUEST_METHOD": "GET"]
        if let acceptEncoding { params["HTTP_ACCEPT_ENCODING"] = acceptEncoding }
        let transport = MemoryTransport(params)
        return (transport, transport.request(GZipRequest.self))
    }

    @Test("compressing: Content-Encoding set, the app's Content-Length replaced by the gzip one, Vary once")
    func headersWhenCompressing() throws {
        let (transport, request) = request("gzip, deflate")
        try request.setHeader("Content-Length", "5")
        try request.setHeader("Vary", "Cookie, accept-encoding")
        try request.write("hello")
        request.close()
        let (headers, body) = splitResponse(transport.output)
        #expect(request.isCompressing)
        #expect(headers.contains("Content-Encoding: gzip"))
        #expect(
            headers.components(separatedBy: "\r\n").filter { $0.hasPrefix("Content-Length") } == ["Content-Length: \(body.count)"]
        )
        #expect(headers.contains("Vary: Cookie, accept-encoding"))
        #expect(headers.components(separatedBy: "Vary").count == 2)
        let decoded = try Gunzip.decode(body)
        #expect(decoded.complete)
        #expect(decoded.output == Array("hello".utf8))
    }

    @Test("not accepted: plain body, Content-Length kept, Vary still added")
    func headersWhenRefused() throws {
        for header in [nil, "gzip;q=0", "br"] as [String?] {
            let (transport, request) = request(header)
            try request.setHeader("Content-Length", "5")
            try request.write("hello")
            request.close()
            let (headers, body) = splitResponse(transport.output)
            #expect(!request.isCompressing)
            #expect(headers.contains("Content-Length: 5"))
            #expect(headers.contains("Vary: Accept-Encoding"))
            #expect(!headers.contains("Content-Encoding"))
            #expect(body == Array("hello".utf8))
        }
    }

    @Test("level 0 disables compression and adds no header: same output as Request")
    func levelZero() throws {
        let (transport, request) = request("gzip")
        try request.setCompressionLevel(0)
        try request.write("hello")
        request.close()
        let plain = MemoryTransport(["HTTP_ACCEPT_ENCODING": "gzip"])
        let plainRequest = plain.request()
        try plainRequest.write("hello")
        plainRequest.close()
        #expect(transport.output == plain.output)
        #expect(!request.isCompressing)
    }

    @Test("a response with its own Content-Encoding, or a 304, is not compressed")
    func leftAlone() throws {
        let (transport, request) = request("gzip")
        try request.setHeader("Content-Encoding", "br")
        try request.write("xyz")
        request.close()
        #expect(!request.isCompressing)
        #expect(splitResponse(transport.output).body == Array("xyz".utf8))

        let (transport304, request304) = self.request("gzip")
        try request304.setHeader("Status", "304 Not Modified")
        request304.close()
        #expect(!request304.isCompressing)
        #expect(splitResponse(transport304.output).body.isEmpty)
    }

    @Test("changing the level after the headers were sent is a sequencing error")
    func sequencing() throws {
        let (_, request) = request("gzip")
        try request.setCompressionLevel(1)
        #expect(request.compressionLevel == 1)
        try request.setCompressionLevel(42)
        #expect(request.compressionLevel == 9)
        try request.write("x")
        request.flush()
        #expect(throws: SequencingError.self) { try request.setCompressionLevel(6) }
        #expect(request.compressionLevel == 9)
    }

    @Test(
        "decompressed output equals the plain output",
        arguments: [0, 1, 65536, 10 << 20], [false, true])
    func roundTrip(size: Int, repetitive: Bool) throws {
        let body =
            repetitive
            ? Array(String(repeating: "All work and no play makes Jack a dull boy. ", count: size / 44 + 1).utf8.prefix(size))
            : testBytes(size, seed: UInt64(size))
        let (transport, request) = request("gzip")
        request.setBuffering(false)
        var offset = 0
        while offset < body.count {
            let end = min(offset + 10_007, body.count)
            try request.write(body[offset..<end])
            offset = end
        }
        request.close()
        let (headers, compressed) = splitResponse(transport.output)
        #expect(headers.contains("Content-Encoding: gzip"))
        let decoded = try Gunzip.decode(compressed)
        #expect(decoded.complete)
        #expect(decoded.output == body)
        if repetitive && size >= 65536 { #expect(compressed.count < size / 20) }
        // Streamed, not accumulated: no single write is much larger than zlib's output buffer.
        #expect((transport.writes.map(\.count).max() ?? 0) <= 65536)
    }

    @Test("flush() makes everything written so far decodable; the member is finished at the end")
    func syncFlush() throws {
        let (transport, request) = request("gzip")
        try request.write("first part\n")
        request.flush()
        let (_, early) = splitResponse(transport.output)
        let partial = try Gunzip.decode(early)
        #expect(!partial.complete)
        #expect(partial.output == Array("first part\n".utf8))
        try request.write("second part\n")
        request.close()
        let full = try Gunzip.decode(splitResponse(transport.output).body)
        #expect(full.complete)
        #expect(full.output == Array("first part\nsecond part\n".utf8))
    }

    @Test("an error page after a failed handler is compressed like any response")
    func traceback() throws {
        let (transport, request) = request("gzip")
        try request.write("partial")
        request.traceback(TestFailure("boom"))
        request.close()
        let (headers, body) = splitResponse(transport.output)
        #expect(headers.contains("Status: 500"))
        let decoded = try Gunzip.decode(body)
        #expect(decoded.complete)
        #expect(String(decoding: decoded.output, as: UTF8.self).contains("Internal Server Error"))
    }
}

@Suite("GZipRequest end to end", .serialized, .timeLimit(.minutes(5)))
struct GZipEndToEndTests {
    /// A filter's stdin has ended when it flushes (output before the end of stdin
    /// waits for it: see `RequestLimits.maxOutputBeforeBodyEnd`); its data has not.
    @Test("a flush reaches the client, decodable, before the request ends", arguments: [0, 1, 2])
    func flushBeforeEnd(level: Int) throws {
        let app = try RunningApp("echo", arguments: ["--gzip", "--threading-level", "\(level)"])
        let connection = try FastCGIConnection(to: app.address, timeout: .seconds(10))
        let first = Array(String(repeating: "0123456789abcdef", count: 4096).utf8)  // 64 KiB
        let rest = Array("the end\n".utf8)
        try connection.write(
            Raw.begin(
                1, role: .filter,
                params: [
                    "REQUEST_METHOD": "POST", "HTTP_ACCEPT_ENCODING": "gzip", "ECHO_FLUSH": "1",
                    "CONTENT_LENGTH": "\(first.count)", "FCGI_DATA_LENGTH": "\(rest.count)",
                ]) + Raw.stream(.stdin, 1, first))
        var stdout: [UInt8] = []
        var decoded: [UInt8] = []
        while decoded.count < first.count {
            guard let record = try connection.readRecord() else { throw TestFailure("connection closed early") }
            #expect(record.type == .stdout, "got \(record) before the data was sent")
            guard record.type == .stdout else { return }
            stdout += record.content
            decoded = try Gunzip.decode(splitResponse(stdout).body).output
        }
        #expect(decoded == first)
        #expect(splitResponse(stdout).body.count < first.count / 20)
        try connection.write(Raw.stream(.data, 1, rest))
        let response = try connection.readResponse(requestID: 1)
        let whole = try Gunzip.decode(splitResponse(stdout + response.stdout).body)
        #expect(whole.complete)
        #expect(whole.output == first + rest)
        #expect(response.protocolStatus == .requestComplete)
    }

    @Test("CGI mode: the gzip CGI request compresses stdout when the client accepts it")
    func cgi() throws {
        let result = try ChildProcess.run(
            Paths.app("hello"), ["--gzip", "9"],
            environment: ["REQUEST_METHOD": "GET", "QUERY_STRING": "name=gzip", "HTTP_ACCEPT_ENCODING": "deflate, gzip"])
        #expect(result.status == 0)
        let (headers, body) = splitResponse([UInt8](result.stdout))
        #expect(headers.contains("Content-Encoding: gzip"))
        let decoded = try Gunzip.decode(body)
        #expect(decoded.complete)
        #expect(decoded.output == Array("Hello, gzip!\n".utf8))

        let plain = try ChildProcess.run(Paths.app("hello"), ["--gzip"], environment: ["REQUEST_METHOD": "GET"])
        #expect(
            String(decoding: plain.stdout, as: UTF8.self).hasSuffix(
                "Vary: Accept-Encoding\r\nContent-Length: 14\r\n\r\nHello, world!\n"))
    }

    @Test("through nginx: curl --compressed gets the original bytes, plain curl plain ones")
    func nginx() throws {
        let app = try RunningApp("echo", arguments: ["--gzip", "1"])
        let nginx = try RunningNginx(upstream: app.address)
        let file = nginx.prefix.appendingPathComponent("body.txt")
        let body = Data(String(repeating: "swift-fcgi gzip through nginx\n", count: 20_000).utf8)
        try body.write(to: file)

        let (code, decoded) = try nginx.curl("/echo", ["--compressed"], body: file)
        #expect(code == 200)
        #expect(decoded == body)

        let (rawCode, raw) = try nginx.curl("/echo", ["-H", "Accept-Encoding: gzip"], body: file)
        #expect(rawCode == 200)
        #expect(raw.count < body.count / 20)
        let rawFile = nginx.prefix.appendingPathComponent("raw.gz")
        try raw.write(to: rawFile)
        #expect(try ChildProcess.run("gunzip", ["-t", rawFile.path]).status == 0)

        let (plainCode, plain) = try nginx.curl("/echo", body: file)
        #expect(plainCode == 200)
        #expect(plain == body)

        let dump = nginx.prefix.appendingPathComponent("headers.txt")
        _ = try nginx.curl("/echo", ["-D", dump.path, "-H", "Accept-Encoding: gzip"], body: file)
        let headers = try String(contentsOf: dump, encoding: .utf8).lowercased()
        #expect(headers.contains("content-encoding: gzip"))
        #expect(headers.contains("vary: accept-encoding"))
    }
}
