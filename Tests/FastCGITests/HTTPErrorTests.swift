import FastCGIWire
import Foundation
import Testing

@testable import FastCGI

/// Client mistakes answer 4xx, not 500; a handler chooses a status by throwing
/// ``HTTPError``.
@Suite("HTTPError: the status of a thrown error")
struct HTTPErrorTests {
    /// The response `request` sends after `traceback(error)`.
    func page(for error: any Error, _ transport: MemoryTransport = MemoryTransport()) -> String {
        let request = transport.request()
        request.traceback(error)
        request.close()
        return transport.outputText
    }

    @Test(
        "each error answers its status, with a page for it",
        arguments: [
            (HTTPError(.notFound) as any Error, "404 Not Found"), (HTTPError(.forbidden, "no") as any Error, "403 Forbidden"),
            (HTTPError(418) as any Error, "418 Error"), (HTTPError(999) as any Error, "500 Internal Server Error"),
            (FormError("bad escape", cause: .invalidPercentEncoding) as any Error, "400 Bad Request"),
            (RequestError("too big", isLimitExceeded: true) as any Error, "413 Content Too Large"),
            (RequestError("the peer went away") as any Error, "500 Internal Server Error"),
            (RequestError("no input", cause: .inputStalled) as any Error, "408 Request Timeout"),
            (RequestError("aborted", cause: .aborted) as any Error, "400 Bad Request"),
        ])
    func statuses(error: any Error, status: String) {
        let text = page(for: error)
        #expect(
            text.hasPrefix("Status: \(status)\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: "),
            "\(text.prefix(60))")
        #expect(text.contains("<title>\(status)</title>"))
    }

    @Test("a malformed query string is 400, a form body over the limit 413")
    func clientMistakes() {
        let malformed = MemoryTransport(["QUERY_STRING": "q=%zz", "REQUEST_METHOD": "GET"])
        let request = malformed.request()
        do {
            _ = try request.params
            Issue.record("expected a FormError")
        } catch {
            request.traceback(error)
        }
        request.close()
        #expect(malformed.outputText.hasPrefix("Status: 400 Bad Request\r\n"))

        var limits = RequestLimits()
        limits.maxFormBytes = 10
        let big = MemoryTransport(
            ["REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/x-www-form-urlencoded"],
            stdin: Array("a=0123456789abcdef".utf8))
        let large = big.request(limits: limits)
        do {
            _ = try large.params
            Issue.record("expected the form limit")
        } catch {
            large.traceback(error)
        }
        large.close()
        #expect(big.outputText.hasPrefix("Status: 413 Content Too Large\r\n"))
    }

    @Test("the 500 page is the one it always was")
    func internalError() {
        struct Boom: Error {}
        let text = page(for: Boom())
        #expect(text.contains("<body><h1>Internal Server Error</h1>"))
        #expect(text.contains("The server encountered an error and could not complete your request."))
    }

    @Test("through nginx: ?name=%zz is a 400, not a 500")
    func throughNginx() throws {
        let app = try RunningApp("hello")
        let nginx = try RunningNginx(upstream: app.address)
        #expect(try nginx.curl("/?name=%zz").code == 400)
        #expect(try nginx.curl("/?name=ok").code == 200)
        // The reason is in the app's own log.
        var log = ""
        for _ in 0..<100 where !log.contains("request refused") {
            usleep(20_000)
            log = app.child.stderrText
        }
        #expect(log.contains("request refused") && log.contains("status=400"))
    }
}
