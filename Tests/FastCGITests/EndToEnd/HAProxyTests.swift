import FastCGIClient
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// HAProxy as a real multiplexing client (`option mpxs-conns`, `option
/// get-values`) in front of the echo app at level 2, driven by curl.
@Suite("Behind HAProxy (multiplexing FastCGI client)", .serialized, .timeLimit(.minutes(5)))
struct HAProxyTests {
    @Test("health checks through the ping page: a hung app goes DOWN, UP again once it answers")
    func healthCheck() throws {
        let app = try RunningApp("hello", arguments: ["--ping-path", "/ping"])
        let haproxy = try RunningHAProxy(upstream: app.address, checkInterval: "500ms")
        #expect(try haproxy.curl("/").code == 200)
        app.child.signal(SIGSTOP)
        #expect(ProcessManagerTests.eventually(15) { haproxy.child.stderrText.contains("Server app/app1 is DOWN") })
        #expect(haproxy.child.stderrText.contains("Layer7 timeout"))
        app.child.signal(SIGCONT)
        #expect(ProcessManagerTests.eventually(15) { haproxy.child.stderrText.contains("Server app/app1 is UP") })
        #expect(try haproxy.curl("/").code == 200)
    }

    @Test("20 parallel clients, bodies up to 1 MiB: multiplexed on shared connections, GET_VALUES answered")
    func multiplexed() throws {
        let app = try RunningApp(
            "echo", arguments: ["--threading-level", "2", "--status-path", "/status", "--ping-path", "/ping"])
        let haproxy = try RunningHAProxy(upstream: app.address)
        let failures = Failures()
        onParallelThreads(20) { i in
            do {
                let file = haproxy.prefix.appendingPathComponent("body-\(i)")
                let size = i == 0 ? 1 << 20 : 1_000 * (i * i + 1)
                let body = Data(testBytes(size, seed: UInt64(100 + i)))
                try body.write(to: file)
                for round in 0..<3 {
                    // A short sleep in the handler keeps requests open at the same time.
                    let (code, echoed) = try haproxy.curl("/echo/\(i)/\(round)", ["-H", "X-Echo-Sleep-Ms: 50"], body: file)
                    if code != 200 || echoed != body {
                        failures.add("client \(i): HTTP \(code), \(echoed.count) of \(body.count) bytes")
                    }
                }
            } catch {
                failures.add("client \(i): \(error)")
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all)")

        let (code, json) = try haproxy.curl("/status?json")
        #expect(code == 200)
        let status = try JSONSerialization.jsonObject(with: json) as? [String: Any] ?? [:]
        let perConnection = status["max requests on one connection"] as? Int ?? 0
        let getValues = status["get-values answered"] as? Int ?? 0
        let served = status["requests served"] as? Int ?? 0
        let connections = status["accepted conn"] as? Int ?? 0
        print(
            "HAProxy → echo level 2: \(served) requests over \(connections) connections, up to \(perConnection) at once on one, \(getValues) GET_VALUES answered"
        )
        #expect(served == 60)
        #expect(getValues >= 1, "HAProxy's FCGI_GET_VALUES was answered")
        // HAProxy multiplexes only once its GET_VALUES was answered; under the
        // sanitizers (scripts/sanitize) the app is too slow for requests to overlap.
        if ProcessInfo.processInfo.environment["SWIFT_FCGI_SANITIZER"] == nil {
            #expect(perConnection >= 2, "requests were multiplexed on a shared connection")
        }
        #expect(connections < 60, "connections were shared")
        #expect(haproxy.child.isRunning && app.child.isRunning)
    }
}
