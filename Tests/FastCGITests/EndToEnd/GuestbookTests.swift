import FastCGIClient
import Foundation
import Testing

/// Issue 15 end to end: the guestbook example behind real nginx, driven by curl
/// as a browser would (upload, charset, 400/413, Content-Length, HEAD, redirect
/// and cookie), and `fcgi request` printing a streamed response as it arrives.
@Suite("Guestbook behind nginx: everyday HTTP", .serialized, .timeLimit(.minutes(3)))
struct GuestbookTests {
    let app: RunningApp
    let nginx: RunningNginx

    init() throws {
        app = try RunningApp("guestbook", arguments: ["--max-form-bytes", "200000"])
        nginx = try RunningNginx(upstream: app.address)
    }

    @Test("a form post: 303 to /, a cookie, the greeting in UTF-8 with the default charset")
    func signAndGreet() throws {
        let signed = try nginx.curlWithHeaders("/sign", ["--data-urlencode", "name=Zoë", "--data-urlencode", "message=hi <b>"])
        #expect(signed.code == 303)
        #expect(signed.headers["location"] == "/")
        #expect(signed.headers["set-cookie"]?.hasPrefix("name=Zo%C3%AB; Max-Age=2592000; Path=/; HttpOnly") == true)
        let page = try nginx.curlWithHeaders("/", ["-H", "Cookie: name=Zo%C3%AB"])
        #expect(page.code == 200)
        #expect(page.headers["content-type"] == "text/html; charset=utf-8")
        let html = String(decoding: page.body, as: UTF8.self)
        #expect(html.contains("<h1>Hello, Zoë!</h1>"))
        #expect(html.contains("hi &lt;b&gt;"))
    }

    @Test("an upload through a plain `file` field keeps its bytes, filename and type")
    func upload() throws {
        let bytes = Data(testBytes(100_000, seed: 15))
        let file = nginx.prefix.appendingPathComponent("photo.bin")
        try bytes.write(to: file)
        let signed = try nginx.curl(
            "/sign", ["-F", "name=Ann", "-F", "file=@\(file.path);type=image/x-test;filename=photo one.bin"])
        #expect(signed.code == 303)
        let entries = try nginx.curl("/entries.json")
        let index = (try JSONSerialization.jsonObject(with: entries.body) as? [Any])?.count ?? 0
        let fetched = try nginx.curlWithHeaders("/files/\(index - 1)")
        #expect(fetched.code == 200)
        #expect(fetched.body == bytes, "\(fetched.body.count) bytes back")
        #expect(fetched.headers["content-type"] == "image/x-test")
        #expect(fetched.headers["content-disposition"] == "attachment; filename=\"photo one.bin\"")
        #expect(fetched.headers["content-length"] == "100000")
    }

    @Test("client mistakes: a bad escape is 400, a form over the limit 413, an unknown path 404")
    func clientMistakes() throws {
        #expect(try nginx.curl("/?q=%zz").code == 400)
        let big = nginx.prefix.appendingPathComponent("big.txt")
        try Data(("name=x&message=" + String(repeating: "m", count: 300_000)).utf8).write(to: big)
        #expect(try nginx.curl("/sign", ["--data-binary", "@\(big.path)"]).code == 413)
        #expect(try nginx.curl("/nowhere").code == 404)
        #expect(app.child.isRunning)
    }

    @Test("Content-Length for a buffered page (no chunking); HEAD: the same headers, no body")
    func lengthAndHead() throws {
        let page = try nginx.curlWithHeaders("/")
        #expect(page.headers["content-length"] == "\(page.body.count)")
        #expect(page.headers["transfer-encoding"] == nil)
        let head = try nginx.curlWithHeaders("/", ["-I"])
        #expect(head.code == 200)
        // curl -I writes the headers where the body would go: nothing else came.
        #expect(String(decoding: head.body, as: UTF8.self).hasSuffix("\r\n\r\n"))
        #expect(!String(decoding: head.body, as: UTF8.self).contains("<!DOCTYPE"))
        #expect(head.headers["content-length"] == "\(page.body.count)")
        #expect(head.headers["content-type"] == "text/html; charset=utf-8")
    }

    @Test("a streamed page through nginx (default buffering) arrives line by line")
    func streamedThroughNginx() throws {
        let client = try ChildProcess(
            "curl", ["-sN", nginx.url + "/stream?count=2&delay_ms=2500"], directory: try TempDirectory.make())
        defer { client.stop() }
        #expect(ProcessManagerTests.eventually(10) { client.stdoutText.contains("line 1") })
        #expect(client.stdoutText == "line 1\n")
        #expect(client.isRunning, "nginx held the first line back")
        #expect(client.waitForExit(timeout: 20) == 0)
        #expect(client.stdoutText == "line 1\nline 2\n")
    }

    @Test("fcgi request prints a streamed response as it arrives")
    func streamedCLI() throws {
        let client = try ChildProcess(
            Paths.app("fcgi"), ["request", app.address, "--uri", "/stream?count=2&delay_ms=2500"],
            directory: try TempDirectory.make())
        defer { client.stop() }
        var waited = 0
        while !client.stdoutText.contains("line 1") && waited < 200 {
            usleep(50_000)
            waited += 1
        }
        #expect(client.stdoutText == "line 1\n")
        #expect(client.isRunning, "the first line came only at the end")
        #expect(client.waitForExit(timeout: 20) == 0)
        #expect(client.stdoutText == "line 1\nline 2\n")
    }
}
