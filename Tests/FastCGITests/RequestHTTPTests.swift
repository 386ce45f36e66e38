import Foundation
import Testing

@testable import FastCGI

/// Issue 15, point 4: the everyday helpers on `Request`.
@Suite("Request: method, path, status, redirects, cookies, JSON, HEAD")
struct RequestHTTPTests {
    @Test(
        "path: DOCUMENT_URI, else SCRIPT_NAME + PATH_INFO, else REQUEST_URI decoded",
        arguments: [
            (["DOCUMENT_URI": "/upload", "REQUEST_URI": "/upl%6Fad?x=1", "SCRIPT_NAME": "/upload"], "/upload"),
            (["SCRIPT_NAME": "/app", "PATH_INFO": "/a b", "REQUEST_URI": "/app/a%20b"], "/app/a b"),
            (["REQUEST_URI": "/upl%6Fad?x=%41"], "/upload"),
            (["REQUEST_URI": "/bad%zz"], "/bad%zz"),
            ([:], "/"),
        ])
    func path(params: [String: String], expected: String) {
        #expect(MemoryTransport(params).request().path == expected)
    }

    /// This test binary: what Apache's SCRIPT_FILENAME names when the script
    /// itself is asked for.
    static let thisProgram = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/"

    @Test(
        "pathInfo: the route below the mount point, behind nginx and as Apache's script",
        arguments: [
            // nginx, include fastcgi_params: the whole path.
            (["DOCUMENT_URI": "/sign", "SCRIPT_NAME": "/sign", "SCRIPT_FILENAME": "/var/www/html/sign"], "/sign"),
            // nginx, fastcgi_split_path_info; Apache AddHandler and CGI: PATH_INFO.
            (["DOCUMENT_URI": "/app.fcgi/sign", "SCRIPT_NAME": "/app.fcgi", "PATH_INFO": "/sign"], "/sign"),
            (["SCRIPT_NAME": "/app/guestbook.fcgi", "PATH_INFO": "/files/2", "SCRIPT_FILENAME": thisProgram], "/files/2"),
            // Apache, the script itself: its SCRIPT_FILENAME is this program.
            (["SCRIPT_NAME": "/app/guestbook.fcgi", "SCRIPT_FILENAME": thisProgram], "/"),
            // A SCRIPT_FILENAME that is some other file (lighttpd, mod_proxy_fcgi): the path.
            (["SCRIPT_NAME": "/sign", "SCRIPT_FILENAME": "/srv/www/sign"], "/sign"),
            (["SCRIPT_NAME": "/x", "SCRIPT_FILENAME": "proxy:fcgi://127.0.0.1:9000/x"], "/x"),
            ([:], "/"),
        ])
    func pathInfo(params: [String: String], expected: String) {
        #expect(MemoryTransport(params).request().pathInfo == expected)
    }

    @Test("method is uppercased, GET when absent; query is raw")
    func methodAndQuery() {
        #expect(MemoryTransport(["REQUEST_METHOD": "post"]).request().method == "POST")
        #expect(MemoryTransport().request().method == "GET")
        #expect(MemoryTransport(["QUERY_STRING": "a=%41"]).request().query == "a=%41")
    }

    @Test("a redirect: 303 See Other and Location, refused with CR/LF in it")
    func redirect() throws {
        let transport = MemoryTransport()
        let request = transport.request()
        try request.redirect(to: "/done?id=7")
        request.close()
        #expect(transport.outputText.contains("Location: /done?id=7\r\n"))
        #expect(transport.outputText.contains("Status: 303 See Other\r\n"))
        #expect(throws: HeaderError.self) { try MemoryTransport().request().redirect(to: "/x\r\nSet-Cookie: a=b") }
        let moved = MemoryTransport().request()
        try moved.redirect(to: "https://example.org/", status: .movedPermanently)
        #expect(moved.getHeader("Status") == "301 Moved Permanently")
    }

    @Test("setCookie: encoded value, attributes, and cookie() decodes it back")
    func cookies() throws {
        let request = MemoryTransport().request()
        try request.setCookie("name", "Zoë; x=1", maxAge: 3600, secure: true, sameSite: .strict)
        #expect(
            request.getHeader("Set-Cookie")
                == "name=Zo%C3%AB%3B%20x=1; Max-Age=3600; Path=/; Secure; HttpOnly; SameSite=Strict")
        try request.setCookie("gone", "", maxAge: 0, path: nil, httpOnly: false, sameSite: nil)
        #expect(request.getHeader("Set-Cookie", index: 1) == "gone=; Max-Age=0")
        #expect(throws: HeaderError.self) { try request.setCookie("a b", "v") }
        #expect(throws: HeaderError.self) { try request.setCookie("a", "v", path: "/;Domain=evil") }

        let incoming = MemoryTransport(["HTTP_COOKIE": "name=Zo%C3%AB%3B%20x=1; raw=100%; plain=abc"]).request()
        #expect(incoming.cookie("name") == "Zoë; x=1")
        #expect(incoming.cookie("raw") == "100%", "a malformed escape stays as it came")
        #expect(incoming.cookie("plain") == "abc")
        #expect(incoming.cookie("none") == nil)
        #expect(incoming.cookies["name"] == "Zo%C3%AB%3B%20x=1", "cookies keeps the raw values")
    }

    @Test("writeJSON: the body, its type, a status")
    func json() throws {
        struct Entry: Encodable {
            var name: String
            var count: Int
        }
        let transport = MemoryTransport()
        let request = transport.request()
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        try request.writeJSON(Entry(name: "Zoë", count: 2), status: .created, encoder: encoder)
        request.close()
        let text = transport.outputText
        #expect(text.hasPrefix("Content-Type: application/json\r\nStatus: 201 Created\r\n"), "\(text)")
        #expect(text.hasSuffix("\r\n\r\n{\"count\":2,\"name\":\"Zoë\"}"), "\(text)")
    }

    @Test("escapeHTML escapes the five characters")
    func escape() {
        #expect(Request.escapeHTML("<a href=\"x\">'&'</a>") == "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;")
    }

    @Test("HEAD: the GET's headers, no body")
    func head() throws {
        let transport = MemoryTransport(["REQUEST_METHOD": "HEAD"])
        let request = transport.request()
        try request.write("hello")
        request.close()
        #expect(transport.outputText == "Content-Type: text/html; charset=utf-8\r\nContent-Length: 5\r\n\r\n")

        let streamed = MemoryTransport(["REQUEST_METHOD": "HEAD"])
        let streaming = streamed.request()
        streaming.setBuffering(false)
        try streaming.write("hello")
        streaming.close()
        #expect(streamed.outputText == "Content-Type: text/html; charset=utf-8\r\n\r\n")
    }

    /// Issue 15, point 6: a body known whole at the end gets its length.
    @Test(
        "Content-Length: only when the whole body is known and the response has one",
        arguments: [
            ("buffered", "Content-Length: 5"), ("streamed", nil), ("own length", "Content-Length: 99"),
            ("204", nil), ("304", nil), ("authorizer", nil), ("HEAD, nothing written", nil),
            ("flushed first", nil),
        ] as [(String, String?)])
    func contentLength(scenario: String, expected: String?) throws {
        let transport = MemoryTransport(
            scenario.hasPrefix("HEAD") ? ["REQUEST_METHOD": "HEAD"] : [:],
            role: scenario == "authorizer" ? .authorizer : .responder)
        let request = transport.request()
        switch scenario {
        case "streamed": request.setBuffering(false)
        case "own length": try request.setHeader("Content-Length", "99")
        case "204", "304": try request.setHeader("Status", scenario)
        case "flushed first": request.flush()
        default: break
        }
        if !scenario.hasPrefix("HEAD") { try request.write("hello") }
        request.close()
        let lengths = transport.outputText.components(separatedBy: "\r\n").filter { $0.hasPrefix("Content-Length") }
        #expect(lengths == (expected.map { [$0] } ?? []), "\(scenario)")
    }

    @Test("Content-Length of a gzipped buffered body is the compressed length")
    func gzipLength() throws {
        let transport = MemoryTransport(["HTTP_ACCEPT_ENCODING": "gzip"])
        let request = transport.request(GZipRequest.self)
        try request.write(String(repeating: "compress me ", count: 100))
        request.close()
        let text = transport.output
        let end = try #require(text.indices.first { text[$0...].starts(with: Array("\r\n\r\n".utf8)) })
        let headers = String(decoding: text[..<end], as: UTF8.self)
        #expect(headers.contains("Content-Length: \(text.count - end - 4)"))
        #expect(text.count - end - 4 < 1200)
    }
}
