import Testing

@testable import FastCGI

@Suite("Request.params and cookies")
struct FormParsingTests {
    @Test("query string: percent and plus decoding, & and ; separators, empty values")
    func query() throws {
        let request = MemoryTransport(["QUERY_STRING": "a=1&b=hello+world;c=%C3%A9t%C3%A9&flag&e=", "REQUEST_METHOD": "GET"])
            .request()
        let params = try request.params
        #expect(params["a"] == .text("1"))
        #expect(params["b"] == .text("hello world"))
        #expect(params["c"]?.string == "été")
        #expect(params["flag"] == .text(""))
        #expect(params["e"] == .text(""))
    }

    @Test("names ending in * collect lists; other names keep the last value")
    func lists() throws {
        let request = MemoryTransport(["QUERY_STRING": "x*=1&x*=2&y=1&y=2&x*=3"]).request()
        let params = try request.params
        #expect(params["x*"]?.strings == ["1", "2", "3"])
        #expect(params["y"] == .text("2"))
    }

    @Test("urlencoded POST body merges with the query string")
    func urlencodedPost() throws {
        let body = Array("name=Ada+L&tags*=a&tags*=b".utf8)
        let request = MemoryTransport(
            [
                "QUERY_STRING": "q=1", "REQUEST_METHOD": "POST",
                "CONTENT_TYPE": "application/x-www-form-urlencoded; charset=UTF-8",
            ],
            stdin: body
        ).request()
        let params = try request.params
        #expect(params["q"] == .text("1"))
        #expect(params["name"] == .text("Ada L"))
        #expect(params["tags*"]?.strings == ["a", "b"])
    }

    @Test("a GET body is not parsed")
    func getBodyIgnored() throws {
        let request = MemoryTransport(
            ["REQUEST_METHOD": "GET", "CONTENT_TYPE": "application/x-www-form-urlencoded"], stdin: Array("a=1".utf8)
        ).request()
        #expect(try request.params.isEmpty)
        #expect(try request.stdin.readAll() == Array("a=1".utf8))
    }

    static let boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"

    static func multipart(_ parts: [(headers: String, body: [UInt8])]) -> [UInt8] {
        var out: [UInt8] = Array("preamble\r\n".utf8)
        for part in parts {
            out += Array("--\(boundary)\r\n\(part.headers)\r\n\r\n".utf8) + part.body + Array("\r\n".utf8)
        }
        out += Array("--\(boundary)--\r\nepilogue".utf8)
        return out
    }

    @Test("multipart: fields, a file kept whole with !, lists with *")
    func multipart() throws {
        let file: [UInt8] = [0, 1, 2, 0xFF, 13, 10, 45, 45]
        let body = Self.multipart([
            ("Content-Disposition: form-data; name=\"title\"", Array("My upload".utf8)),
            (
                "Content-Disposition: form-data; name=\"file!\"; filename=\"a;b.bin\"\r\nContent-Type: application/octet-stream",
                file
            ),
            ("Content-Disposition: form-data; name=\"tag*\"", Array("x".utf8)),
            ("Content-Disposition: form-data; name=\"tag*\"", Array("y".utf8)),
            ("Content-Disposition: form-data; name=\"plainfile\"; filename=\"p.txt\"", Array("as text".utf8)),
        ])
        let request = MemoryTransport(
            ["REQUEST_METHOD": "POST", "CONTENT_TYPE": "multipart/form-data; boundary=\"\(Self.boundary)\""], stdin: body
        ).request()
        let params = try request.params
        #expect(params["title"] == .text("My upload"))
        let part = try #require(params["file!"]?.part)
        #expect(part.filename == "a;b.bin")
        #expect(part.name == "file!")
        #expect(part.contentType == "application/octet-stream")
        #expect(part.body == file)
        #expect(params["tag*"]?.strings == ["x", "y"])
        #expect(params["plainfile"] == .text("as text"))
    }

    @Test("an upload under a plain name keeps its exact bytes, and its filename in files")
    func plainNamedUpload() throws {
        let file = testBytes(100_000, seed: 15)
        let body = Self.multipart([
            ("Content-Disposition: form-data; name=\"note\"", Array("Zoë".utf8)),
            ("Content-Disposition: form-data; name=\"file\"; filename=\"photo.jpg\"\r\nContent-Type: image/jpeg", file),
            ("Content-Disposition: form-data; name=\"latin\"", [0x5A, 0x6F, 0xEB]),
        ])
        let request = MemoryTransport(
            ["REQUEST_METHOD": "POST", "CONTENT_TYPE": "multipart/form-data; boundary=\(Self.boundary)"], stdin: body
        ).request()
        let params = try request.params
        #expect(params["file"]?.bytes == file, "the plain field's bytes, exactly")
        #expect(params["file"] == .binary(file))
        #expect(params["note"] == .text("Zoë"))
        #expect(params["latin"] == .binary([0x5A, 0x6F, 0xEB]))
        #expect(params["latin"]?.string == "Zoë", "non-UTF-8 text reads as Latin-1")
        let upload = try #require(try request.files["file"])
        #expect(upload.filename == "photo.jpg")
        #expect(upload.contentType == "image/jpeg")
        #expect(upload.body == file)
        #expect(try request.files.count == 1, "only parts with a filename are files")
    }

    @Test("a repeated plain name: the last value wins; a * name keeps both; files too")
    func repeatedNames() throws {
        let body = Self.multipart([
            ("Content-Disposition: form-data; name=\"a\"", Array("first".utf8)),
            ("Content-Disposition: form-data; name=\"a\"", Array("second".utf8)),
            ("Content-Disposition: form-data; name=\"doc\"; filename=\"1.txt\"", Array("one".utf8)),
            ("Content-Disposition: form-data; name=\"doc\"; filename=\"2.txt\"", Array("two".utf8)),
            ("Content-Disposition: form-data; name=\"docs*\"; filename=\"x.txt\"", Array("x".utf8)),
            ("Content-Disposition: form-data; name=\"docs*\"; filename=\"y.txt\"", Array("y".utf8)),
        ])
        let request = MemoryTransport(
            ["REQUEST_METHOD": "POST", "CONTENT_TYPE": "multipart/form-data; boundary=\(Self.boundary)"], stdin: body
        ).request()
        let params = try request.params
        #expect(params["a"] == .text("second"))
        #expect(params["doc"] == .text("two"))
        #expect(params["docs*"]?.strings == ["x", "y"])
        #expect(try request.files["doc"]?.filename == "2.txt")
        #expect(try request.files["docs*"]?.filename == "y.txt")
    }

    @Test("percent escapes that are not UTF-8 keep their bytes")
    func binaryQuery() throws {
        let params = try MemoryTransport(["QUERY_STRING": "b=%FF%00a&t=%C3%A9"]).request().params
        #expect(params["b"] == .binary([0xFF, 0x00, 0x61]))
        #expect(params["t"] == .text("é"))
    }

    @Test(
        "malformed input is a clear FormError with its cause, never a crash",
        arguments: [
            (["QUERY_STRING": "a=%zz"], [UInt8](), FormError.Cause.invalidPercentEncoding),
            (["QUERY_STRING": "a=%4"], [], .invalidPercentEncoding),
            (["REQUEST_METHOD": "POST", "CONTENT_TYPE": "multipart/form-data"], Array("x".utf8), .missingBoundary),
            (
                ["REQUEST_METHOD": "POST", "CONTENT_TYPE": "multipart/form-data; boundary=b"],
                Array("no boundary here".utf8), .malformedMultipart
            ),
            (
                ["REQUEST_METHOD": "POST", "CONTENT_TYPE": "multipart/form-data; boundary=b"],
                Array("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated".utf8), .malformedMultipart
            ),
            (
                ["REQUEST_METHOD": "POST", "CONTENT_TYPE": "multipart/form-data; boundary=b"],
                Array("--b\r\nno-colon-line\r\n\r\nx\r\n--b--".utf8), .malformedMultipart
            ),
            (
                ["REQUEST_METHOD": "POST", "CONTENT_TYPE": "multipart/form-data; boundary=b"],
                Array("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--".utf8), .malformedMultipart
            ),
        ])
    func malformed(params: [String: String], body: [UInt8], cause: FormError.Cause) {
        let request = MemoryTransport(params, stdin: body).request()
        #expect(throws: FormError.self) { try request.params }
        do {
            _ = try request.params
        } catch let error as FormError {
            #expect(error.cause == cause)
        } catch {
            Issue.record("expected a FormError, got \(error)")
        }
    }

    @Test("a form body over the limit is refused with a clear error")
    func formLimit() {
        var limits = RequestLimits()
        limits.maxFormBytes = 10
        let request = MemoryTransport(
            ["REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/x-www-form-urlencoded"],
            stdin: Array(repeating: UInt8(ascii: "a"), count: 100)
        ).request(limits: limits)
        #expect(throws: RequestError.self) { try request.params }
    }

    @Test("cookies: quoted values, spaces, first of a repeated name wins, junk skipped")
    func cookies() {
        let request = MemoryTransport(["HTTP_COOKIE": "a=1; b=\"two words\";c=3; a=ignored; junk; =x"]).request()
        #expect(request.cookies == ["a": "1", "b": "two words", "c": "3"])
        #expect(MemoryTransport().request().cookies.isEmpty)
    }
}
