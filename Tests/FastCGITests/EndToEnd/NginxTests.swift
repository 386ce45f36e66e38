import FastCGIClient
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The apps behind a real nginx (fastcgi_pass, fastcgi_keep_conn on), driven by curl.
@Suite("Behind nginx", .serialized, .timeLimit(.minutes(5)))
struct NginxTests {
    @Test("GET through nginx", arguments: [false, true])
    func get(spawn: Bool) throws {
        let app = spawn ? try RunningApp(spawnFCGI: "hello", unix: true) : try RunningApp("hello")
        let nginx = try RunningNginx(upstream: app.address)
        let (code, body) = try nginx.curl("/?name=nginx")
        #expect(code == 200)
        #expect(String(decoding: body, as: UTF8.self) == "Hello, nginx!\n")
    }

    @Test("async-hello through nginx at levels 1 and 2, with 16 clients awaiting at once", arguments: ["1", "2"])
    func asyncHello(level: String) throws {
        let app = try RunningApp("async-hello", arguments: ["--threading-level", level, "--workers", "16"])
        let nginx = try RunningNginx(upstream: app.address)
        let start = Date()
        let failures = Failures()
        onParallelThreads(16) { i in
            do {
                let (code, body) = try nginx.curl("/?name=n\(i)&delay_ms=300")
                if code != 200 || body != Data("Hello, n\(i)!\n".utf8) { failures.add("client \(i): \(code)") }
            } catch {
                failures.add("client \(i): \(error)")
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all)")
        // Sixteen 300 ms waits at once, not one after another.
        #expect(Date().timeIntervalSince(start) < 3)
    }

    @Test("POST of 1 MiB echoed back byte for byte")
    func post() throws {
        let app = try RunningApp("echo")
        let nginx = try RunningNginx(upstream: app.address)
        let file = nginx.prefix.appendingPathComponent("body.bin")
        let body = Data(testBytes(1 << 20, seed: 11))
        try body.write(to: file)
        let (code, echoed) = try nginx.curl("/echo", body: file)
        #expect(code == 200)
        #expect(echoed == body)
    }

    /// nginx stops sending a request's body once it has the response's head; over
    /// a unix socket (small buffers) an echo that answered while it read waited
    /// for the rest of the body forever. Output now waits for stdin's end.
    @Test("POST of 3 MiB over a unix socket, echoed while read, at levels 1 and 2", arguments: ["1", "2"])
    func postOverUnixSocket(level: String) throws {
        let app = try RunningApp("echo", unix: true, arguments: ["--threading-level", level])
        let nginx = try RunningNginx(upstream: app.address)
        let file = nginx.prefix.appendingPathComponent("body.bin")
        let body = Data(testBytes(3 << 20, seed: 13))
        try body.write(to: file)
        for _ in 0..<2 {
            let (code, echoed) = try nginx.curl("/echo", ["--max-time", "20"], body: file)
            #expect(code == 200)
            #expect(echoed == body, "\(echoed.count) of \(body.count) bytes came back")
        }
    }

    @Test("16 parallel clients over kept connections")
    func parallel() throws {
        let app = try RunningApp("echo", arguments: ["--workers", "16"])
        let nginx = try RunningNginx(upstream: app.address)
        let failures = Failures()
        onParallelThreads(16) { i in
            do {
                let file = nginx.prefix.appendingPathComponent("body-\(i)")
                let body = Data(testBytes(5_000 * (i + 1), seed: UInt64(i)))
                try body.write(to: file)
                for _ in 0..<3 {
                    let (code, echoed) = try nginx.curl("/p\(i)", body: file)
                    if code != 200 || echoed != body { failures.add("client \(i): \(code), \(echoed.count) bytes") }
                }
            } catch {
                failures.add("client \(i): \(error)")
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all)")
    }

    @Test("a throwing handler: 500 page to the browser, the error in nginx's error log")
    func throwing() throws {
        let app = try RunningApp("echo")
        let nginx = try RunningNginx(upstream: app.address)
        let (code, body) = try nginx.curl("/fail", ["-H", "X-Echo-Throw: 1"])
        #expect(code == 500)
        #expect(String(decoding: body, as: UTF8.self).contains("Internal Server Error"))
        var log = ""
        for _ in 0..<50 where !log.contains("echo was asked to fail") {
            usleep(20_000)
            log = nginx.errorLog
        }
        #expect(log.contains("FastCGI sent in stderr"))
        #expect(log.contains("echo was asked to fail"))
    }
}
