import FastCGI
import Foundation
import Testing

/// Issue 15, point 7: running a handler in memory with `Server.respond(to:)`.
@Suite("In memory: Server.respond(to:) runs a handler without a socket")
struct InMemoryTests {
    struct Hello: Handler {
        func process(_ request: Request) throws {
            try request.setHeader("Content-Type", "text/plain; charset=utf-8")
            try request.write("Hello, \(try request.params["name"]?.string ?? "world")!\n")
        }
    }

    @Test("the documented samples: a greeting and a redirect")
    func samples() {
        let server = Server(handlers: [.responder: Hello.self])
        let response = server.respond(to: TestRequest("GET", "/hello?name=Zoë"))
        #expect(response.status == 200 && response.text == "Hello, Zoë!\n")
        #expect(response.header("content-type") == "text/plain; charset=utf-8")
        #expect(response.header("Content-Length") == "\(Array("Hello, Zoë!\n".utf8).count)")

        let redirecting = Server { request in try request.redirect(to: "/done") }
        let redirected = redirecting.respond(to: TestRequest("POST", "/form", body: Array("a=1".utf8)))
        #expect(redirected.status == 303 && redirected.header("Location") == "/done")
    }

    /// The README's "small web app", word for word.
    struct App: Handler {
        func process(_ request: Request) throws {
            switch (request.method, request.path) {
            case ("GET", "/"):
                let name = request.cookie("name") ?? "stranger"
                try request.write("<h1>Hello, \(Request.escapeHTML(name))!</h1>")
                try request.write(#"<form method=post action=/sign enctype=multipart/form-data>"#)
                try request.write(#"<input name=name> <input type=file name=photo> <button>Sign</button></form>"#)
            case ("POST", "/sign"):
                let fields = try request.params  // bad input → 400, over the limit → 413
                guard let name = fields["name"]?.string else { throw HTTPError(.badRequest, "no name") }
                if let photo = try request.files["photo"] {  // bytes exact, with filename and type
                    request.logger.info("\(photo.filename ?? "?"): \(photo.body.count) bytes")
                }
                try request.setCookie("name", name, maxAge: 86400)  // Path=/; HttpOnly; SameSite=Lax
                try request.redirect(to: "/")  // 303 See Other
            default:
                throw HTTPError(.notFound)  // the 404 page
            }
        }
    }

    @Test("the README's app: a form post redirects with a cookie; the page greets it; 404 elsewhere")
    func readmeApp() {
        let server = Server(handlers: [.responder: App.self])
        let response = server.respond(to: TestRequest("POST", "/sign", body: Array("name=Zoë".utf8)))
        #expect(response.status == 303 && response.header("Location") == "/")
        #expect(response.header("Set-Cookie") == "name=Zo%C3%AB; Max-Age=86400; Path=/; HttpOnly; SameSite=Lax")
        let page = server.respond(to: TestRequest("GET", "/", headers: ["Cookie": "name=Zo%C3%AB"]))
        #expect(page.text.hasPrefix("<h1>Hello, Zoë!</h1>"))
        #expect(server.respond(to: TestRequest("GET", "/x")).status == 404)
        #expect(server.respond(to: TestRequest("POST", "/sign", body: Array("a=%zz".utf8))).status == 400)
    }

    /// The README's async handler, word for word but for the sleep.
    struct SlowHello: AsyncHandler {
        func process(_ request: Request) async throws {
            let form = try await request.readForm()  // the body read with await
            try await Task.sleep(for: .milliseconds(2))  // no thread held meanwhile
            try request.setHeader("Content-Type", "text/plain")
            try request.write("Hello, \(form["name"]?.string ?? "world")!\n")
        }
    }

    @Test("an async handler in memory: a form post, the body as chunks, an error page")
    func asyncHandler() async throws {
        let server = Server(factories: [.responder: .type(SlowHello.self)], configuration: .init(threadingLevel: 2))
        let post = TestRequest(
            "POST", "/", headers: ["Content-Type": "application/x-www-form-urlencoded"], body: Array("name=Zoë".utf8))
        #expect(await server.respond(to: post).text == "Hello, Zoë!\n")
        let chunks = Server(factories: [
            .responder: .async { request in
                var count = 0
                for try await chunk in request.stdin { count += chunk.count }
                try request.write("\(count) bytes")
            }
        ])
        #expect(
            await chunks.respond(to: TestRequest("POST", "/", body: Array(repeating: 7, count: 200_000))).text == "200000 bytes")
        let failing = Server(asyncResponder: { _ in throw HTTPError(.notFound, "none here") })
        #expect(await failing.respond(to: TestRequest("GET", "/x")).status == 404)
    }

    /// Calls the blocking form, as a non-async test does.
    static func respondBlocking(_ server: Server, _ request: TestRequest) -> TestResponse {
        server.respond(to: request)
    }

    static let sleeper = Server(factories: [
        .responder: .async { request in
            try await Task.sleep(for: .milliseconds(20))
            await Task.yield()
            try request.write("slept")
        }
    ])

    @Test(
        "8 blocking respond(to:) calls at once from the suite's own tasks, to an async handler: refused at once, never hung",
        .timeLimit(.minutes(1)))
    func blockingRespondInParallel() async {
        // Each caller is one of Swift concurrency's few threads: waiting there
        // would hold them all while the handler's timer needs one.
        let responses = await withTaskGroup(of: TestResponse.self) { group in
            for _ in 0..<8 { group.addTask { Self.respondBlocking(Self.sleeper, TestRequest()) } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(responses.count == 8)
        for response in responses {
            #expect(response.status == 500)
            #expect(String(decoding: response.stderr, as: UTF8.self).contains("use `await server.respond(to:)`"))
        }
        #expect(await Self.sleeper.respond(to: TestRequest()).text == "slept", "awaited, it answers")
    }

    @Test(
        "8 blocking respond(to:) calls at once from threads that run no task: each thread runs the handler",
        .timeLimit(.minutes(1)))
    func blockingRespondOnThreads() {
        let texts = Locked<[String]>([])
        let done = DispatchGroup()
        for _ in 0..<8 {
            done.enter()
            Thread {
                let text = Self.respondBlocking(Self.sleeper, TestRequest()).text
                texts.withLock { $0.append(text) }
                done.leave()
            }.start()
        }
        #expect(done.wait(timeout: .now() + 30) == .success)
        #expect(texts.withLock { $0 } == Array(repeating: "slept", count: 8))
    }

    @Test("an address as a string literal, as the README writes it")
    func addressLiteral() {
        let server = Server(configuration: .init(address: "unix:/run/app/app.sock")) { request in try request.write("hi") }
        #expect(server.address == .unix(path: "/run/app/app.sock"))
        #expect(server.respond(to: TestRequest()).text == "hi")
    }

    @Test("params as nginx sets them: method, decoded path, query, headers, form body")
    func params() throws {
        let server = Server { request in
            let fields = try request.params
            try request.write(
                "\(request.method) \(request.path) \(request.query) \(request.environ["HTTP_X_TOKEN"] ?? "-") "
                    + "\(fields["a"]?.string ?? "-") \(request.cookie("id") ?? "-")")
        }
        let response = server.respond(
            to: TestRequest(
                "POST", "/upl%6Fad?x=1", headers: ["X-Token": "t", "Cookie": "id=a%20b"], body: Array("a=Zo%C3%AB".utf8)))
        #expect(response.text == "POST /upload x=1 t Zoë a b")
    }

    @Test("an upload keeps its bytes and filename")
    func upload() throws {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let body =
            Array("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\n\r\n".utf8) + bytes
            + Array("\r\n--b--\r\n".utf8)
        let server = Server { request in
            let file = try #require(try request.files["file"])
            try request.write("\(file.filename ?? "-") \(file.body == bytes)")
        }
        let response = server.respond(
            to: TestRequest("POST", "/", headers: ["Content-Type": "multipart/form-data; boundary=b"], body: body))
        #expect(response.text == "x.bin true")
    }

    @Test("errors: a 4xx page with nothing on FCGI_STDERR (no [error] line in nginx's log); a 500 with the traceback there")
    func errors() {
        struct Teapot: Error {}
        let server = Server { request in
            if request.path == "/missing" { throw HTTPError(.notFound) }
            if request.path == "/form" { throw FormError("broken", cause: .malformedMultipart) }
            throw Teapot()
        }
        let missing = server.respond(to: TestRequest("GET", "/missing"))
        #expect(missing.status == 404 && missing.text.contains("404 Not Found"))
        #expect(missing.stderr.isEmpty)
        let form = server.respond(to: TestRequest("GET", "/form"))
        #expect(form.status == .badRequest && form.stderr.isEmpty)
        let broken = server.respond(to: TestRequest("GET", "/x?q=1"))
        #expect(broken.status == 500)
        #expect(String(decoding: broken.stderr, as: UTF8.self).contains("Uncaught error in handler (Teapot)"))
    }

    @Test("the filter role reads FCGI_DATA; a role without a handler gets nothing")
    func filter() throws {
        let server = Server(
            factories: [
                .filter: .closure { request in try request.write(try request.fastcgiData.readAll()) }
            ])
        let filtered = server.respond(to: TestRequest(role: .filter, data: Array("data".utf8)))
        #expect(filtered.text == "data")
        #expect(server.respond(to: TestRequest()).stdout.isEmpty)
    }
}

/// Doc-comment samples that run no server, compiled here word for word (a
/// sample that stops compiling fails the build). Not called.
enum DocSamples {
    struct App: Handler {
        func process(_ request: Request) throws {}
    }

    /// `Monitoring`.
    static func monitoring() throws {
        var monitoring = Monitoring()
        monitoring.pingPath = "/ping"
        monitoring.statusPath = "/status"
        monitoring.slowRequestThreshold = .seconds(2)
        monitoring.requestTimeout = .seconds(30)
        var configuration = Server.Configuration()
        configuration.monitoring = monitoring
        try Server(factories: [.responder: .type(App.self)], configuration: configuration).run()
    }

    /// `CGIRequest`.
    static func cgiRequest() throws {
        let request = CGIRequest()
        try request.write("Hello\n")
        request.close()
    }
}
