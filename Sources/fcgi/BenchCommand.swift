import ArgumentParser
import FastCGIClient
import FastCGIWire
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load-test a FastCGI application: requests/s, p50/p99 latency, errors.")

    @Argument(help: "host:port or unix:/path of the FastCGI application.")
    var address: String

    @Option(name: .short, help: "Connections (one thread each).")
    var connections: Int = 10

    @Option(name: .short, help: "Seconds to run.")
    var duration: Double = 5

    @Flag(name: .short, help: "Keep connections open (FCGI_KEEP_CONN); otherwise one connection per request.")
    var keepAlive = false

    @Option(name: .short, help: "Requests in flight per connection (multiplexing; needs -k).")
    var multiplex: Int = 1

    @Option(name: .short, help: "Body bytes per request (POST), echoed by an echo app.")
    var bodyBytes: Int = 0

    @Option(name: [.customShort("p"), .customLong("param")], help: "An extra param NAME=VALUE for every request (repeatable).")
    var extraParams: [String] = []

    @Flag(help: "Print only one machine-readable line: rps p50_ms p99_ms errors requests retried max_ms.")
    var machine = false

    func validate() throws {
        guard connections >= 1, duration > 0, multiplex >= 1, bodyBytes >= 0 else {
            throw ValidationError("-c, -d and -m must be positive, -b not negative")
        }
        if multiplex > 1 && !keepAlive { throw ValidationError("-m needs -k: multiplexed requests share a kept connection") }
    }

    func run() throws {
        let body = [UInt8](repeating: UInt8(ascii: "x"), count: bodyBytes)
        let params = try requestParams(
            defaultParams(method: bodyBytes > 0 ? "POST" : "GET", uri: "/bench?x=1", bodyLength: body.count),
            overriddenBy: extraParams)
        let stats = Stats()
        let deadline = Date().addingTimeInterval(duration)
        let group = DispatchGroup()
        for _ in 0..<connections {
            group.enter()
            let thread = Thread { [address, keepAlive, multiplex] in
                defer { group.leave() }
                let worker = BenchWorker(
                    address: address, keepAlive: keepAlive, inFlight: multiplex, params: params, body: body, stats: stats)
                worker.run(until: deadline)
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        let start = Date()
        let progress = isatty(1) == 1 && !machine
        while group.wait(timeout: .now() + 1) == .timedOut {
            if progress {
                let (count, errors) = stats.counts
                let elapsed = Date().timeIntervalSince(start)
                let line = String(
                    format: "\r%6.1fs  %9d requests  %9.0f req/s  %d errors", elapsed, count, Double(count) / elapsed, errors)
                FileHandle.standardOutput.write(Data(line.utf8))
            }
        }
        if progress { print("") }
        let elapsed = Date().timeIntervalSince(start)
        let summary = stats.summary(elapsed: elapsed)
        if machine {
            print(
                String(
                    format: "%.1f %.3f %.3f %d %d %d %.3f", summary.rps, summary.p50 * 1000, summary.p99 * 1000,
                    summary.errors, summary.requests, summary.retried, summary.max * 1000))
        } else {
            print(
                "\(summary.requests) requests in \(String(format: "%.2f", elapsed)) s over \(connections) connection(s)\(keepAlive ? " kept" : ""), \(multiplex) in flight each"
            )
            print(String(format: "requests/s: %.1f", summary.rps))
            print(
                String(
                    format: "latency p50: %.3f ms  p99: %.3f ms  max: %.3f ms", summary.p50 * 1000, summary.p99 * 1000,
                    summary.max * 1000))
            print("errors: \(summary.errors)\(summary.firstError.map { " (first: \($0))" } ?? "")")
            if summary.retried > 0 {
                print(
                    "retried: \(summary.retried) (a kept connection closed before any byte of a reply; sent again, as nginx does)"
                )
            }
        }
        if summary.requests == 0 { throw ExitCode(1) }
    }
}

/// Results shared by the bench threads.
final class Stats: @unchecked Sendable {
    private let lock = NSLock()
    private var latencies: [Double] = []
    private var errors = 0
    private var retried = 0
    private var firstError: String?
    private var count = 0

    func add(_ samples: [Double]) {
        lock.withLock {
            latencies += samples
            count += samples.count
        }
    }

    func addProgress(_ n: Int) { lock.withLock { count += n } }

    func fail(_ error: String) {
        lock.withLock {
            errors += 1
            if firstError == nil { firstError = error }
        }
    }

    /// A kept connection closed before any byte of a reply: the request was sent
    /// again on a new connection, as nginx does (not an error; counted apart).
    func retry() { lock.withLock { retried += 1 } }

    var counts: (Int, Int) { lock.withLock { (count, errors) } }

    func summary(elapsed: Double) -> (
        requests: Int, rps: Double, p50: Double, p99: Double, errors: Int, firstError: String?, retried: Int, max: Double
    ) {
        lock.withLock {
            let sorted = latencies.sorted()
            func percentile(_ p: Double) -> Double {
                sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
            }
            return (
                sorted.count, Double(sorted.count) / elapsed, percentile(0.5), percentile(0.99), errors, firstError, retried,
                sorted.last ?? 0
            )
        }
    }
}

/// One connection's load loop.
struct BenchWorker {
    let address: String
    let keepAlive: Bool
    let inFlight: Int
    let params: [NameValuePair]
    let body: [UInt8]
    let stats: Stats

    func encoded(_ id: UInt16) -> [UInt8] {
        FastCGIRequest(requestID: id, params: params, stdin: body, keepConnection: keepAlive).encoded
    }

    func run(until deadline: Date) {
        var samples: [Double] = []
        samples.reserveCapacity(100_000)
        defer { stats.add(samples) }
        var connection: FastCGIConnection?
        var started: [UInt16: UInt64] = [:]
        // Whether the connection served a request before, and whether any record
        // came since the last request was written: nginx resends a request whose
        // kept connection closed before any of its reply, and so does this.
        var reused = false
        var replying = false
        while Date() < deadline {
            do {
                if connection == nil {
                    connection = try FastCGIConnection(to: address, timeout: .seconds(10))
                    started = [:]
                    reused = false
                    replying = false
                    for id in 1...UInt16(inFlight) {
                        started[id] = DispatchTime.now().uptimeNanoseconds
                        try connection!.write(encoded(id))
                    }
                }
                guard let current = connection else { continue }
                guard let record = try current.readRecord() else { throw ClientError(.connectionClosed, "closed") }
                replying = true
                guard record.type == .endRequest, let begin = started[record.requestID] else { continue }
                samples.append(Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9)
                if record.content.count >= 5, record.content[4] != 0 {
                    stats.fail("request refused: protocol status \(record.content[4])")
                }
                // Bytes behind the END_REQUEST, or its FIN: the app is closing the
                // connection (nginx keeps a connection only when END_REQUEST was
                // the last byte it read; Apache checks for the FIN).
                if !keepAlive || (inFlight == 1 && (current.hasUnreadBytes || current.peerHasClosed)) {
                    connection = nil
                    continue
                }
                if Date() < deadline {
                    reused = true
                    replying = false
                    started[record.requestID] = DispatchTime.now().uptimeNanoseconds
                    try current.write(encoded(record.requestID))
                }
            } catch {
                if keepAlive && inFlight == 1 && reused && !replying {
                    stats.retry()
                    connection = nil
                    continue
                }
                stats.fail("\(error)")
                connection = nil
                usleep(1000)
            }
        }
    }
}
