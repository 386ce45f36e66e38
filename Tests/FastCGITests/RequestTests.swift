import Testing

@testable import FastCGI

@Suite("Request: headers, buffering, output")
struct RequestTests {
    @Test("default Content-Type: text/html in UTF-8, the encoding write(String) sends")
    func defaultHeader() {
        let transport = MemoryTransport()
        let request = transport.request()
        request.close()
        #expect(transport.outputText == "Content-Type: text/html; charset=utf-8\r\nContent-Length: 0\r\n\r\n")
    }

    @Test("setHeader replaces every header of that name, case-insensitively, in place")
    func setHeader() throws {
        let request = MemoryTransport().request()
        try request.addHeader("X-A", "1")
        try request.addHeader("x-a", "2")
        try request.setHeader("X-B", "b")
        try request.setHeader("X-a", "3")
        #expect(
            request.headerFields.map { "\($0.name): \($0.value)" } == [
                "Content-Type: text/html; charset=utf-8", "X-a: 3", "X-B: b",
            ])
    }

    @Test("addHeader keeps duplicates; getHeader indexes them; delHeader removes all")
    func addGetDel() throws {
        let request = MemoryTransport().request()
        try request.addHeader("Set-Cookie", "a=1")
        try request.addHeader("Set-Cookie", "b=2")
        #expect(request.getHeader("set-cookie") == "a=1")
        #expect(request.getHeader("Set-Cookie", index: 1) == "b=2")
        #expect(request.getHeader("Set-Cookie", index: 2) == nil)
        try request.delHeader("SET-COOKIE")
        #expect(request.getHeader("Set-Cookie") == nil)
        #expect(request.getHeader("Content-Type") != nil)
    }

    @Test("appendHeaderValue builds a comma list without duplicates")
    func appendValue() throws {
        let request = MemoryTransport().request()
        try request.appendHeaderValue("Vary", "Accept-Encoding")
        try request.appendHeaderValue("Vary", "Cookie")
        try request.appendHeaderValue("vary", "accept-encoding")
        #expect(request.getHeader("Vary") == "Accept-Encoding, Cookie")
    }

    @Test("clearHeaders removes the default too")
    func clearHeaders() throws {
        let transport = MemoryTransport()
        let request = transport.request()
        try request.clearHeaders()
        try request.setHeader("Status", "204")
        request.close()
        #expect(transport.outputText == "Status: 204\r\n\r\n")
    }

    @Test("changing headers after they were sent is a sequencing error")
    func sequencing() throws {
        let request = MemoryTransport().request()
        try request.write("x")
        request.flush()
        #expect(request.headersSent)
        #expect(throws: SequencingError.self) { try request.setHeader("A", "b") }
        #expect(throws: SequencingError.self) { try request.addHeader("A", "b") }
        #expect(throws: SequencingError.self) { try request.delHeader("A") }
        #expect(throws: SequencingError.self) { try request.appendHeaderValue("A", "b") }
        #expect(throws: SequencingError.self) { try request.clearHeaders() }
        #expect(throws: SequencingError.self) { try request.outputHeaders() }
        do {
            try request.setHeader("Status", "404")
        } catch {
            #expect("\(error)" == "setHeader(Status): the headers have already been sent")
        }
    }

    @Test("buffered output goes out only on flush, in one write with the headers first")
    func buffering() throws {
        let transport = MemoryTransport()
        let request = transport.request()
        try request.write("Hello, ")
        try request.write(Array("world".utf8))
        #expect(transport.writes.isEmpty)
        request.flush()
        #expect(transport.outputText == "Content-Type: text/html; charset=utf-8\r\n\r\nHello, world")
        #expect(transport.flushes == 1)
    }

    @Test("unbuffered output streams each write")
    func unbuffered() throws {
        let transport = MemoryTransport()
        let request = transport.request()
        request.setBuffering(false)
        #expect(transport.writes.isEmpty, "turning buffering off with nothing written sends nothing")
        try request.setHeader("Content-Type", "text/plain")
        try request.write("a")
        try request.write("b")
        #expect(transport.writes.count == 3)
        #expect(transport.outputText == "Content-Type: text/plain\r\n\r\nab")
    }

    @Test("setBuffering(false) flushes what was buffered")
    func bufferingOffFlushes() throws {
        let transport = MemoryTransport()
        let request = transport.request()
        try request.write("early")
        request.setBuffering(false)
        #expect(transport.outputText.hasSuffix("\r\n\r\nearly"))
    }

    @Test("clearOutput discards the buffer and rewinds tell(); refused when unbuffered")
    func clearOutput() throws {
        let transport = MemoryTransport()
        let request = transport.request()
        try request.write("discard me")
        #expect(request.tell() == 10)
        try request.clearOutput()
        #expect(request.tell() == 0)
        try request.write("kept")
        request.close()
        #expect(transport.outputText.hasSuffix("\r\n\r\nkept"))
        let unbuffered = MemoryTransport().request()
        unbuffered.setBuffering(false)
        #expect(throws: SequencingError.self) { try unbuffered.clearOutput() }
    }

    @Test("tell counts body bytes written, buffered or sent")
    func tell() throws {
        let request = MemoryTransport().request()
        try request.write("abc")
        request.flush()
        try request.write([1, 2])
        #expect(request.tell() == 5)
        try request.write("é")
        #expect(request.tell() == 7)
    }

    @Test("close sends everything once; writing after close throws")
    func close() throws {
        let transport = MemoryTransport()
        let request = transport.request()
        try request.write("x")
        request.close()
        request.close()
        #expect(transport.outputText.hasSuffix("\r\n\r\nx"))
        #expect(throws: SequencingError.self) { try request.write("y") }
    }

    @Test("error() writes to the error stream only")
    func errorStream() throws {
        let transport = MemoryTransport()
        let request = transport.request()
        request.error("oops\n")
        #expect(String(decoding: transport.errors, as: UTF8.self) == "oops\n")
        #expect(transport.writes.isEmpty)
    }

    @Test("traceback replaces an unsent response with the 500 page")
    func traceback() throws {
        struct Boom: Error, CustomStringConvertible { var description: String { "boom <b>" } }
        let transport = MemoryTransport()
        let request = transport.request()
        try request.setHeader("X-Custom", "1")
        try request.write("partial")
        request.traceback(Boom())
        request.close()
        let text = transport.outputText
        #expect(text.hasPrefix("Status: 500 Internal Server Error\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: "))
        #expect(!text.contains("partial") && !text.contains("X-Custom"))
        #expect(!text.contains("boom"))
        #expect(String(decoding: transport.errors, as: UTF8.self).contains("boom <b>"))

        let debug = MemoryTransport()
        let debugRequest = debug.request()
        debugRequest.traceback(Boom(), detail: true)
        debugRequest.close()
        #expect(debug.outputText.contains("boom &lt;b&gt;"), "detail is shown, HTML-escaped")
    }

    @Test("traceback after the headers were sent only logs")
    func tracebackAfterHeaders() throws {
        let transport = MemoryTransport()
        let request = transport.request()
        request.setBuffering(false)
        try request.write("sent")
        request.traceback(RequestError("late"))
        request.close()
        #expect(transport.outputText == "Content-Type: text/html; charset=utf-8\r\n\r\nsent")
        #expect(String(decoding: transport.errors, as: UTF8.self).contains("late"))
    }

    @Test("a peer that went away marks the request aborted and output is dropped")
    func peerGone() throws {
        let transport = MemoryTransport()
        let request = transport.request()
        transport.peerGone = true
        try request.write("x")
        request.flush()
        #expect(request.aborted)
        #expect(transport.writes.isEmpty)
    }

    @Test("DebugHandler's traceback shows detail; Handler's does not")
    func handlerTraceback() {
        struct Plain: Handler { func process(_ request: Request) throws { throw RequestError("secret detail") } }
        struct Debug: DebugHandler { func process(_ request: Request) throws { throw RequestError("secret detail") } }
        for (factory, shows) in [(HandlerFactory.type(Plain.self), false), (.type(Debug.self), true)] {
            let transport = MemoryTransport()
            let request = transport.request()
            factory(request)
            request.close()
            #expect(transport.outputText.contains("secret detail") == shows)
        }
    }

    @Test("stdin: read(max), readLine and readAll over small transport reads")
    func stdinReading() throws {
        let request = MemoryTransport(stdin: Array("line one\nline two\nrest".utf8)).request()
        #expect(try request.stdin.readLine() == Array("line one\n".utf8))
        #expect(try request.stdin.read(4) == Array("line".utf8))
        #expect(try request.stdin.readLine() == Array(" two\n".utf8))
        #expect(try request.stdin.readAll() == Array("rest".utf8))
        #expect(try request.stdin.readLine() == nil)
        #expect(try request.stdin.read(10) == [])
    }

    @Test("environ gives strings; a Latin-1 value decodes losslessly, bytes stay exact")
    func environ() {
        let latin1: [UInt8] = [0x63, 0x61, 0x66, 0xE9]
        let env = CGIEnvironment(pairs: [(Array("A".utf8), Array("é".utf8)), (Array("L".utf8), latin1)])
        #expect(env["A"] == "é")
        #expect(env["L"] == "café")
        #expect(env.bytes("L") == latin1)
        #expect(env["missing"] == nil)
        #expect(env.contains("A") && !env.contains("B"))
    }

    @Test("a param sent twice: the first value wins in every lookup, the dictionary included")
    func duplicateParams() {
        let environment = CGIEnvironment(pairs: [
            (Array("X".utf8), Array("first".utf8)), (Array("X".utf8), Array("second".utf8)),
        ])
        #expect(environment["X"] == "first")
        #expect(environment.bytes("X") == Array("first".utf8))
        #expect(environment.dictionary["X"] == "first")
        #expect(environment.count == 2)
    }

    @Test("params: a name prefix found in one pass, a value compared in place, bytes decoded losslessly")
    func environmentLookups() {
        let environ = CGIEnvironment([
            "REQUEST_METHOD": "HEAD", "HTTP_X_TRACE": "1", "ECHO_": "", "CAF\u{c9}": "caf\u{e9}",
        ])
        #expect(environ.containsName(withPrefix: "HTTP_X_"))
        #expect(environ.containsName(withPrefix: "ECHO_"), "a name equal to the prefix")
        #expect(!environ.containsName(withPrefix: "HTTP_Y_"))
        #expect(!environ.containsName(withPrefix: "REQUEST_METHOD_LONGER"))
        #expect(environ.containsName(withPrefix: ""))
        #expect(environ.value(of: "REQUEST_METHOD", is: "HEAD"))
        #expect(!environ.value(of: "REQUEST_METHOD", is: "HEA"))
        #expect(!environ.value(of: "MISSING", is: "HEAD"))
        #expect(environ["CAF\u{c9}"] == "caf\u{e9}", "UTF-8")
        let latin1 = CGIEnvironment(pairs: [(Array("N".utf8), [0x63, 0x61, 0x66, 0xE9])])
        #expect(latin1["N"] == "caf\u{e9}", "not UTF-8: one character a byte")
        #expect(String(losslessBytes: [UInt8]("GET".utf8)[...]) == "GET")
    }
}
