import Testing

@testable import FastCGI

/// Response splitting (SPEC §8): nothing that could end a header line reaches
/// the wire, whichever header function is used.
@Suite("Response headers: names are tokens, values hold no CR, LF or NUL")
struct HeaderErrorTests {
    static let badValues = [
        "/next\r\nSet-Cookie: session=stolen", "a\nb", "a\rb", "a\u{0}b", "folded\r\n continuation", "\r\n\r\n<html>",
    ]
    static let badNames = ["", "X Space", "X:Colon", "Bad\r\nName", "Ünicode", "tab\there", "(paren)", "a/b"]

    @Test("a value holding CR, LF or NUL is refused by every header function", arguments: badValues)
    func badValue(value: String) throws {
        let transport = MemoryTransport()
        let request = transport.request()
        for (call, attempt) in [
            ("setHeader", { try request.setHeader("Location", value) }),
            ("addHeader", { try request.addHeader("Location", value) }),
            ("appendHeaderValue", { try request.appendHeaderValue("Vary", value) }),
            ("Status", { try request.setHeader("Status", value) }),
        ] as [(String, () throws -> Void)] {
            #expect(throws: HeaderError.self, "\(call)") { try attempt() }
        }
        // The headers are as they were, and what is sent holds no injected line.
        #expect(request.headerFields.map(\.name) == ["Content-Type"])
        request.close()
        #expect(transport.outputText == "Content-Type: text/html; charset=utf-8\r\nContent-Length: 0\r\n\r\n")
    }

    @Test("a name that is not a token is refused", arguments: badNames)
    func badName(name: String) {
        let request = MemoryTransport().request()
        #expect(throws: HeaderError(name: name, reason: .invalidName)) { try request.setHeader(name, "v") }
        #expect(throws: HeaderError(name: name, reason: .invalidName)) { try request.addHeader(name, "v") }
    }

    @Test("valid headers pass: token names, values with tabs, quotes and UTF-8")
    func valid() throws {
        let request = MemoryTransport().request()
        try request.setHeader("X-Token!#$%&'*+-.^_`|~09", "tab\there \"quoted\" Zoë")
        try request.setHeader("Status", "303 See Other")
        try request.addHeader("Set-Cookie", "a=b; Path=/; HttpOnly")
        #expect(request.headerFields.count == 4)
    }

    @Test("every ASCII byte: a name accepts exactly RFC 9110's tchar; a value refuses exactly NUL, LF and CR")
    func everyByte() {
        let tchar = Set(("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" + "!#$%&'*+-.^_`|~").utf8)
        for byte in UInt8(0)..<128 {
            let text = String(decoding: [byte], as: UTF8.self)
            #expect(HeaderError.isToken("X" + text + "Y") == tchar.contains(byte), "name byte \(byte)")
            let refused = (try? HeaderError.check(name: "X", value: "a" + text + "b")) == nil
            #expect(refused == [0, 10, 13].contains(byte), "value byte \(byte)")
        }
        #expect(!HeaderError.isToken("Caf\u{e9}"), "non-ASCII is no token")
        #expect((try? HeaderError.check(name: "X", value: "Caf\u{e9}")) != nil, "UTF-8 in a value is fine")
    }

    @Test("the error says which header and why")
    func message() {
        let error = HeaderError(name: "Location", reason: .invalidValue)
        #expect("\(error)" == "response header \"Location\" refused: the value holds CR, LF or NUL (RFC 9110 §5.5)")
    }

    @Test("on the wire, every level: an injected header never reaches the web server", arguments: [0, 1, 2])
    func onTheWire(level: Int) throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "\(level)", "--log-level", "error"])
        let fine = try app.send(.http(extra: ["ECHO_HEADER": "fine"]))
        #expect(fine.header("X-Echo") == "fine")
        let attack = try app.send(.http(extra: ["ECHO_HEADER": "x\r\nSet-Cookie: session=stolen\r\n\r\n<p>owned"]))
        let text = String(decoding: attack.stdout, as: UTF8.self)
        #expect(text.hasPrefix("Status: 500 Internal Server Error\r\n"))
        #expect(!text.contains("session=stolen") && !text.contains("owned"))
        #expect(attack.header("Set-Cookie") == nil && attack.header("X-Echo") == nil)
        #expect(String(decoding: attack.stderr, as: UTF8.self).contains("response header \"X-Echo\" refused"))
    }
}
