import FastCGIClient
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `--processes N` with real processes: a master keeping N echo workers on one
/// socket, killed, recycled, reloaded under load, and crashing at start-up.
@Suite(
    "Process manager: worker processes, crashes, recycling, reload", .serialized, .timeLimit(.minutes(4)),
    // ThreadSanitizer's runtime fails a check in a child started with posix_spawn
    // by a process it instruments; the address sanitizer run covers these.
    .enabled(if: ProcessInfo.processInfo.environment["SWIFT_FCGI_SANITIZER"] != "thread"))
struct ProcessManagerTests {
    /// The pool's workers: the master's child processes.
    static func workers(of master: Int32) -> Set<Int32> {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return Set(
            entries.compactMap { name -> Int32? in
                guard let pid = Int32(name),
                    let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                    let close = stat.lastIndex(of: ")")
                else { return nil }
                // pid (comm) state ppid …: comm may hold spaces, so read after ")".
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                return fields.count > 1 && Int32(fields[1]) == master ? pid : nil
            })
    }

    /// Waits (bounded) until `condition` holds; true if it did.
    static func eventually(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    /// The pid of the worker that serves a fresh request (ECHO_PID=1).
    static func servingPID(_ address: String) throws -> Int32? {
        let reply = try FastCGIConnection(to: address, timeout: .seconds(10)).send(
            FastCGIRequest(params: [NameValuePair("REQUEST_METHOD", "GET"), NameValuePair("ECHO_PID", "1")]))
        return Int32(String(decoding: reply.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// `fcgi bench` against `address` for `seconds`, as a process of its own.
    static func startBench(_ address: String, seconds: Double, keep: Bool) throws -> ChildProcess {
        try ChildProcess(
            Paths.app("fcgi"), ["bench", address, "-c", "4", "-d", "\(seconds)", "--machine"] + (keep ? ["-k"] : []))
    }

    /// A finished bench's figures: requests, errors, retried, worst latency (ms).
    static func benchResult(_ bench: ChildProcess) throws -> (requests: Int, errors: Int, retried: Int, maxMs: Double) {
        #expect(bench.waitForExit(timeout: 60) == 0, "bench: \(bench.stderrText)")
        let fields = bench.stdoutText.split(separator: " ").map(String.init)
        guard fields.count >= 7, let errors = Int(fields[3]), let requests = Int(fields[4]), let retried = Int(fields[5]),
            let maxMs = Double(fields[6].trimmingCharacters(in: .whitespacesAndNewlines))
        else { throw TestFailure("bench printed \(bench.stdoutText)") }
        return (requests, errors, retried, maxMs)
    }

    /// An echo pool of `size` workers started with `arguments`, once all of them
    /// run; and their pids.
    static func startPool(_ size: Int, _ arguments: [String] = []) throws -> (app: RunningApp, workers: Set<Int32>) {
        let app = try RunningApp("echo", arguments: ["--processes", "\(size)"] + arguments)
        #expect(eventually { workers(of: app.child.pid).count == size })
        return (app, workers(of: app.child.pid))
    }

    @Test("3 workers serve; one killed with SIGKILL under load is replaced, the others serve on")
    func crashIsolation() throws {
        let (app, before) = try Self.startPool(3, ["--status-path", "/status"])
        let master = app.child.pid
        // Served by the workers (which one takes a connection is the kernel's choice).
        var seen: Set<Int32> = []
        for _ in 0..<20 { if let pid = try Self.servingPID(app.address) { seen.insert(pid) } }
        #expect(!seen.isEmpty && seen.isSubset(of: before), "served by \(seen), workers \(before)")

        let bench = try Self.startBench(app.address, seconds: 3, keep: false)
        usleep(800_000)
        let victim = before.sorted()[0]
        kill(victim, SIGKILL)
        #expect(Self.eventually { Self.workers(of: master).count == 3 && !Self.workers(of: master).contains(victim) })
        let result = try Self.benchResult(bench)
        print("SIGKILL of worker \(victim) under load: \(result)")
        // Only what the killed worker held fails: at most one request per bench connection.
        #expect(result.errors <= 4, "\(result)")
        #expect(result.requests > 100)
        #expect(app.child.stderrText.contains("worker \(victim) died: signal 9 (SIGKILL)"))
        #expect(try Self.servingPID(app.address) != nil)

        // Any worker's status page shows the whole pool.
        var pool: [String: Any] = [:]
        #expect(
            Self.eventually {
                pool = (try? Self.status(app.address)) ?? [:]
                return (pool["pool workers"] as? [[String: Any]])?.allSatisfy { ($0["rss"] as? Int ?? 0) > 0 } == true
            })
        let listed = Set((pool["pool workers"] as? [[String: Any]] ?? []).compactMap { ($0["pid"] as? Int).map(Int32.init) })
        #expect(listed == Self.workers(of: master), "\(pool)")
        #expect(pool["pool processes"] as? Int == 3 && pool["pool crashes"] as? Int == 1)
        // The live workers' requests (the killed one's went with its slot).
        #expect((pool["pool requests served"] as? Int ?? 0) > result.requests / 3, "\(pool)")
    }

    /// A worker's status page (`?json`), parsed.
    static func status(_ address: String) throws -> [String: Any] {
        let reply = try FastCGIConnection(to: address, timeout: .seconds(10)).send(
            FastCGIRequest(params: [
                NameValuePair("REQUEST_METHOD", "GET"), NameValuePair("SCRIPT_NAME", "/status"),
                NameValuePair("QUERY_STRING", "json"),
            ]))
        return try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any] ?? [:]
    }

    /// `figure` from `scrapes` status pages (each on a new connection, so any
    /// worker may answer).
    static func scrape(_ address: String, _ figure: String, _ scrapes: Int = 12) -> [Int] {
        (0..<scrapes).map { _ in (try? Self.status(address))?[figure] as? Int ?? -1 }
    }

    @Test("the pool observed as one: the same counters from every worker, kept across a death and a reload")
    func poolWideMetrics() throws {
        let (app, before) = try Self.startPool(3, ["--status-path", "/status"])
        for _ in 0..<300 { _ = try Self.servingPID(app.address) }
        // Published within a heartbeat; scrapes themselves are not counted.
        #expect(Self.eventually { Self.scrape(app.address, "requests served", 1) == [300] })
        #expect(Self.scrape(app.address, "requests served") == Array(repeating: 300, count: 12))
        #expect(Self.scrape(app.address, "pool requests served", 3) == [300, 300, 300])

        kill(before.sorted()[0], SIGKILL)
        #expect(Self.eventually { Self.workers(of: app.child.pid).count == 3 && Self.status(app.address, "pool crashes") == 1 })
        #expect(Self.scrape(app.address, "requests served") == Array(repeating: 300, count: 12), "a dead worker's count is kept")

        kill(app.child.pid, SIGHUP)
        #expect(Self.eventually(15) { app.child.stderrText.contains("reload: generation 2 serves") })
        #expect(Self.eventually { Self.workers(of: app.child.pid).isDisjoint(with: before) })
        for _ in 0..<30 { _ = try Self.servingPID(app.address) }
        #expect(Self.eventually { Self.scrape(app.address, "requests served", 1) == [330] })
        #expect(Self.scrape(app.address, "requests served") == Array(repeating: 330, count: 12), "kept across the reload")

        // The OpenMetrics text, through prometheus_client's own parser: every
        // family parses, units are in the names, workers are labels.
        let text = try FastCGIConnection(to: app.address).send(
            FastCGIRequest(params: [
                NameValuePair("REQUEST_METHOD", "GET"), NameValuePair("SCRIPT_NAME", "/status"),
                NameValuePair("QUERY_STRING", "openmetrics"),
            ]))
        let python = try #require(Self.pythonWithPrometheusClient, "no python3 with prometheus_client: run scripts/setup")
        let parser = try ChildProcess(
            python,
            [
                "-c",
                """
                import sys
                from prometheus_client.openmetrics.parser import text_string_to_metric_families
                for family in text_string_to_metric_families(sys.stdin.read()):
                    for sample in family.samples:
                        print(sample.name, ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items())), sample.value)
                """,
            ], stdin: try Self.file(text.body))
        #expect(parser.waitForExit(timeout: 20) == 0, "\(parser.stderrText)")
        let samples = parser.stdoutText.split(separator: "\n")
        #expect(samples.contains("fastcgi_requests_served_total  330"), "\(samples.prefix(40))")
        #expect(samples.contains { $0.hasPrefix("fastcgi_start_since_seconds ") })
        #expect(samples.filter { $0.hasPrefix("fastcgi_pool_workers_heartbeat_age_seconds worker=") }.count == 3)
    }

    /// A python3 that imports prometheus_client (scripts/setup installs it with
    /// the python3 first on the shell's PATH; a test's PATH may reach another).
    static let pythonWithPrometheusClient: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let candidates =
            path.split(separator: ":").map { "\($0)/python3" } + ["/root/.pyenv/shims/python3", "/usr/local/bin/python3"]
        return candidates.first { candidate in
            FileManager.default.isExecutableFile(atPath: candidate)
                && (try? ChildProcess.run(candidate, ["-c", "import prometheus_client"]).status) == 0
        }
    }()

    /// A new file holding `bytes`, to pass as a child's stdin.
    static func file(_ bytes: [UInt8]) throws -> URL {
        let url = try TempDirectory.make().appendingPathComponent("input")
        try Data(bytes).write(to: url)
        return url
    }

    /// One figure of a worker's status page.
    static func status(_ address: String, _ figure: String) -> Int? { (try? status(address))?[figure] as? Int }

    @Test("a stopped worker: ping --pool fails, the master kills it past --worker-timeout and starts another")
    func stoppedWorker() throws {
        let (app, before) = try Self.startPool(
            2, ["--status-path", "/status", "--ping-path", "/ping", "--worker-timeout", "6"])
        let master = app.child.pid
        let ping = { try ChildProcess.run(Paths.app("fcgi"), ["ping", app.address, "--pool", "--timeout", "5"]) }
        #expect(Self.eventually { (try? ping())?.status == 0 })
        // Both serve and beat (a worker still starting is not judged).
        #expect(
            Self.eventually(20) {
                let workers = (try? Self.status(app.address))?["pool workers"] as? [[String: Any]] ?? []
                return workers.count == 2 && workers.allSatisfy { $0["ready"] as? Bool == true && $0["heartbeat age ms"] is Int }
            })
        let victim = before.sorted()[0]
        kill(victim, SIGSTOP)
        defer { kill(victim, SIGKILL) }
        // Past three missed beats the pool is reported unhealthy by any worker.
        var report = ""
        #expect(
            Self.eventually(10) {
                guard let result = try? ping(), result.status != 0 else { return false }
                report = result.stderr
                return true
            })
        #expect(report.contains("workers without a heartbeat: \(victim)"), "\(report)")
        // Past --worker-timeout the master kills it and starts another.
        #expect(Self.eventually(15) { !Self.workers(of: master).contains(victim) && Self.workers(of: master).count == 2 })
        #expect(app.child.stderrText.contains("worker \(victim) sent no heartbeat for"))
        #expect(Self.eventually { (try? ping())?.status == 0 })
        #expect(Self.status(app.address, "pool hung") == 1 && Self.status(app.address, "pool crashes") == 0)
    }

    /// The real user and group ids of process `pid`.
    static func ids(of pid: Int32) -> (uid: Int, gid: Int)? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        func first(_ key: String) -> Int? {
            status.split(separator: "\n").first { $0.hasPrefix(key) }?.split(separator: "\t").dropFirst().first
                .flatMap { Int($0) }
        }
        guard let uid = first("Uid:"), let gid = first("Gid:") else { return nil }
        return (uid, gid)
    }

    @Test("--user/--group: started as root, the workers serve as nobody:nogroup; the master stays root")
    func dropPrivileges() throws {
        guard getuid() == 0 else {
            // Not root: the pool refuses to start rather than serve as root by surprise.
            let refused = try ChildProcess(Paths.app("echo"), ["--bind", "127.0.0.1:0", "--processes", "1", "--user", "nobody"])
            #expect(refused.waitForExit(timeout: 20) != 0)
            #expect(refused.stderrText.contains("only a process started as root"))
            return
        }
        let (app, workers) = try Self.startPool(2, ["--user", "nobody", "--group", "nogroup"])
        // Each drops as it starts, before it serves.
        for pid in workers {
            #expect(Self.eventually { Self.ids(of: pid).map { [$0.uid, $0.gid] } == [65534, 65534] }, "worker \(pid)")
        }
        #expect(Self.ids(of: app.child.pid)?.uid == 0)
        #expect(try app.send(.http(method: "POST", body: [9])).body == [9])
        // One process: it drops once its socket is open.
        let single = try RunningApp("echo", unix: true, arguments: ["--user", "nobody"])
        #expect(Self.eventually { Self.ids(of: single.child.pid)?.uid == 65534 })
        #expect(try single.send(.http(method: "POST", body: [7])).body == [7])
        let unknown = try ChildProcess(Paths.app("echo"), ["--bind", "127.0.0.1:0", "--user", "no-such-user-here"])
        #expect(unknown.waitForExit(timeout: 20) != 0)
        #expect(unknown.stderrText.contains("no such user"))
    }

    /// The ELF build id `readelf -n` reports for `path`.
    static func buildID(_ path: String) throws -> String? {
        let result = try ChildProcess.run("readelf", ["-n", path])
        let text = String(decoding: result.stdout, as: UTF8.self)
        return text.split(separator: "\n").first { $0.contains("Build ID:") }?.split(separator: " ").last.map(String.init)
    }

    @Test("a Capistrano deploy: current -> releases/v2 swapped, SIGHUP, and the new release serves")
    func symlinkSwap() throws {
        let root = try TempDirectory.make()
        let manager = FileManager.default
        for (release, app) in [("v1", "echo"), ("v2", "hello")] {
            let directory = root.appendingPathComponent("releases/\(release)")
            try manager.createDirectory(at: directory, withIntermediateDirectories: true)
            try manager.copyItem(atPath: Paths.app(app), toPath: directory.appendingPathComponent("app").path)
        }
        try manager.createSymbolicLink(atPath: root.appendingPathComponent("current").path, withDestinationPath: "releases/v1")
        let master = try ChildProcess(
            root.appendingPathComponent("current/app").path, ["--bind", "127.0.0.1:0", "--processes", "2"], directory: root)
        defer { master.stop() }
        let address = "127.0.0.1:\(try Net.listeningPort(of: master.pid))"
        try Net.waitUntilListening(address)
        let post = FastCGIRequest(params: [NameValuePair("REQUEST_METHOD", "POST")], stdin: [1, 2, 3])
        #expect(Self.eventually { (try? FastCGIConnection(to: address).send(post).body) == [1, 2, 3] }, "v1 (echo) serves")
        #expect(Self.eventually { Self.workers(of: master.pid).count == 2 })
        let v1Workers = Self.workers(of: master.pid)
        let v1 = try #require(try Self.buildID(root.appendingPathComponent("releases/v1/app").path))
        #expect(master.stderrText.contains("generation 1 runs \(root.path)/current/app"), "\(master.stderrText)")
        #expect(master.stderrText.contains("build id \(v1)"))

        // The deploy: a new symlink renamed over the old one (atomic), then a reload.
        try manager.createSymbolicLink(atPath: root.appendingPathComponent("next").path, withDestinationPath: "releases/v2")
        #expect(rename(root.appendingPathComponent("next").path, root.appendingPathComponent("current").path) == 0)
        kill(master.pid, SIGHUP)
        #expect(Self.eventually(15) { master.stderrText.contains("reload: generation 2 serves") })
        // The old workers drain: one may still take a connection in that instant.
        #expect(Self.eventually { Self.workers(of: master.pid).isDisjoint(with: v1Workers) })
        let hello = try FastCGIConnection(to: address).send(FastCGIRequest(params: [NameValuePair("REQUEST_METHOD", "GET")]))
        #expect(String(decoding: hello.body, as: UTF8.self) == "Hello, world!\n", "v2 (hello) serves after the reload")
        let v2 = try #require(try Self.buildID(root.appendingPathComponent("releases/v2/app").path))
        #expect(master.stderrText.contains("generation 2 runs \(root.path)/current/app (now \(root.path)/releases/v2/app)"))
        #expect(master.stderrText.contains("build id \(v2)") && v1 != v2)
        for pid in Self.workers(of: master.pid) {
            let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
            #expect(exe == root.appendingPathComponent("releases/v2/app").path, "worker \(pid) runs \(exe ?? "?")")
        }
    }

    @Test("maxRequests 100 with 2 workers: 1,000 requests all answered, no worker past 100")
    func recycling() throws {
        let app = try RunningApp("echo", arguments: ["--processes", "2", "--max-requests", "100"])
        let counts = Locked<[Int32: Int]>([:])
        let failures = Failures()
        onParallelThreads(4) { _ in
            for _ in 0..<250 {
                do {
                    guard let pid = try Self.servingPID(app.address) else { throw TestFailure("no pid in the reply") }
                    counts.withLock { $0[pid, default: 0] += 1 }
                } catch {
                    failures.add("\(error)")
                }
            }
        }
        let served = counts.withLock { $0 }
        #expect(failures.all.isEmpty, "\(failures.all.prefix(3))")
        #expect(served.values.reduce(0, +) == 1000)
        #expect(served.values.allSatisfy { $0 <= 100 }, "\(served.values.sorted())")
        #expect(served.count >= 10, "\(served.count) workers served")
        let recycled = app.child.stderrText.components(separatedBy: "stopped of its own accord").count - 1
        #expect(recycled >= 8, "\(recycled) recycled")
    }

    @Test("a master killed with SIGKILL leaves no worker behind: each sees it gone and stops")
    func orphanedWorkersStop() throws {
        let app = try RunningApp("echo", arguments: ["--processes", "2"])
        #expect(Self.eventually { Self.workers(of: app.child.pid).count == 2 })
        let workers = Self.workers(of: app.child.pid)
        app.child.signal(SIGKILL)
        _ = app.child.waitForExit(timeout: 10)
        #expect(Self.eventually(10) { workers.allSatisfy { kill($0, 0) != 0 } }, "workers \(workers) still running")
        #expect(app.child.stderrText.contains("the pool's master (pid \(app.child.pid)) is gone: this worker stops"))
    }

    @Test("prepare runs once, in the master, before the workers; not in them, not again on reload")
    func prepareOnce() throws {
        let app = try RunningApp("echo", arguments: ["--processes", "2"], environment: ["ECHO_PREPARE": "1"])
        let master = app.child.pid
        #expect(Self.eventually { Self.workers(of: master).count == 2 })
        kill(master, SIGHUP)
        #expect(Self.eventually(15) { app.child.stderrText.contains("reload: generation 2 serves") })
        let log = app.child.stderrText
        let lines = log.split(separator: "\n").filter { $0.contains("echo: prepare ran in pid") }
        #expect(lines.count == 1, "\(lines)")
        #expect(lines.first?.hasSuffix("pid \(master)") == true, "\(lines), master \(master)")
        #expect(try Self.servingPID(app.address).map { $0 != master } == true)
    }

    @Test("SIGHUP under load: 0 failed requests, every worker replaced, the new binary serves")
    func reload() throws {
        // A copy of echo that a reload replaces with hello, as a new build would be.
        let directory = try TempDirectory.make()
        let binary = directory.appendingPathComponent("app").path
        try FileManager.default.copyItem(atPath: Paths.app("echo"), toPath: binary)
        let master = try ChildProcess(binary, ["--bind", "127.0.0.1:0", "--processes", "2"], directory: directory)
        defer { master.stop() }
        let address = "127.0.0.1:\(try Net.listeningPort(of: master.pid))"
        try Net.waitUntilListening(address)
        #expect(Self.eventually { Self.workers(of: master.pid).count == 2 })
        let before = Self.workers(of: master.pid)

        let fresh = try Self.startBench(address, seconds: 4, keep: false)
        let kept = try Self.startBench(address, seconds: 4, keep: true)
        usleep(1_000_000)
        try FileManager.default.copyItem(atPath: Paths.app("hello"), toPath: binary + ".new")
        #expect(rename(binary + ".new", binary) == 0)
        kill(master.pid, SIGHUP)
        #expect(Self.eventually(15) { master.stderrText.contains("reload: generation 2 serves") })
        #expect(
            Self.eventually { Self.workers(of: master.pid).isDisjoint(with: before) && Self.workers(of: master.pid).count == 2 })
        let freshResult = try Self.benchResult(fresh)
        let keptResult = try Self.benchResult(kept)
        #expect(freshResult.errors == 0 && keptResult.errors == 0, "fresh \(freshResult), kept \(keptResult)")
        // Each old worker marks the kept connection it closes: none is reused.
        #expect(keptResult.retried == 0, "kept \(keptResult)")
        print("reload under load: new connection per request \(freshResult), kept connections \(keptResult)")

        let reply = try FastCGIConnection(to: address).send(FastCGIRequest(params: [NameValuePair("REQUEST_METHOD", "GET")]))
        #expect(String(decoding: reply.body, as: UTF8.self) == "Hello, world!\n")
        master.signal(SIGTERM)
        #expect(master.waitForExit(timeout: 20) == 0)
        #expect(Self.workers(of: master.pid).isEmpty)
    }

    @Test("--max-worker-rss: a worker past the limit is replaced, the pool serves on; SIGUSR2 reloads too")
    func memoryLimitAndUSR2() throws {
        // 1 MiB: every worker is over it, so each is replaced about every second.
        let (app, first) = try Self.startPool(1, ["--max-worker-rss", "1"])
        let master = app.child.pid
        #expect(Self.eventually(15) { app.child.stderrText.contains("over the limit: replacing it") })
        #expect(Self.eventually { Self.workers(of: master).count == 1 && Self.workers(of: master).isDisjoint(with: first) })
        #expect(try Self.servingPID(app.address) != nil)

        let (usr2, before) = try Self.startPool(1)
        usr2.child.signal(SIGUSR2)
        #expect(Self.eventually(15) { usr2.child.stderrText.contains("reload: generation 2 serves") })
        // The new generation serves (the old worker drains on its own time).
        let served = try Self.servingPID(usr2.address)
        #expect(served != nil && !before.contains(served!), "served by \(served.map(String.init) ?? "nobody")")
        if !Self.eventually(20, { Self.workers(of: usr2.child.pid).isDisjoint(with: before) }) {
            Issue.record("the old worker \(before) did not exit: \(usr2.child.stderrText.suffix(2000))")
        }
    }

    @Test("a worker that traps at start-up: backoff and a clear log line; the master keeps running")
    func startupCrash() throws {
        // No backtrace on each trap: it is slow (seconds under a sanitizer), and not
        // what is tested.
        let app = try RunningApp(
            "echo", arguments: ["--processes", "1"],
            environment: ProcessInfo.processInfo.environment.merging(
                ["ECHO_TRAP_IN_WORKER": "1", "SWIFT_BACKTRACE": "enable=no"]) { $1 })
        #expect(Self.eventually(15) { app.child.stderrText.contains("workers keep dying at start-up") })
        let starts = app.child.stderrText.components(separatedBy: "started worker").count - 1
        #expect(starts < 12, "\(starts) starts: no backoff?")
        #expect(app.child.isRunning)
        app.child.signal(SIGTERM)
        #expect(app.child.waitForExit(timeout: 30) == 0)
    }

    @Test("Type=notify: READY=1 once the pool serves, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1")
    func systemdNotify() throws {
        let listener = try NotifyListener()
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = listener.path
        let app = try RunningApp("echo", arguments: ["--processes", "2"], environment: environment)
        let ready = try #require(listener.next(timeout: 15))
        #expect(ready.hasPrefix("READY=1"))
        #expect(listener.next(timeout: 0.3) == nil, "the workers do not speak for the service")
        app.child.signal(SIGHUP)
        #expect(listener.next(timeout: 15)?.hasPrefix("RELOADING=1\nMONOTONIC_USEC=") == true)
        #expect(listener.next(timeout: 15)?.hasPrefix("READY=1") == true)
        app.child.signal(SIGTERM)
        #expect(listener.next(timeout: 15)?.hasPrefix("STOPPING=1") == true)
        #expect(app.child.waitForExit(timeout: 20) == 0)

        // One process: READY=1 once it listens, STOPPING=1 on the way out.
        let single = try RunningApp("echo", environment: environment)
        #expect(listener.next(timeout: 15) == "READY=1")
        single.child.signal(SIGTERM)
        #expect(listener.next(timeout: 15) == "STOPPING=1")
    }
}

/// A unix datagram socket standing in for systemd's NOTIFY_SOCKET.
final class NotifyListener {
    let path: String
    private let fd: Int32

    init() throws {
        path = try TempDirectory.make().appendingPathComponent("notify").path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, bound == 0 else { throw TestFailure("cannot bind \(path)") }
    }

    deinit { close(fd) }

    /// The next datagram, or nil after `timeout` seconds.
    func next(timeout: Double) -> String? {
        var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&ready, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : nil
    }
}
