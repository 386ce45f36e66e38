import FastCGIWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The pages the connection thread answers itself (``Monitoring``): ping and
/// status, plus the 504 page of a request that timed out.
enum MonitorPage {
    /// With `pool` (`?pool`), in a process manager's pool: every worker's
    /// heartbeat is checked too.
    case ping(pool: Bool)
    /// With `full` (`?full`, as PHP-FPM's), each open connection too.
    case status(StatusFormat, full: Bool)

    /// How the status page is written: PHP-FPM's text (the default), `?json`,
    /// or `?openmetrics` (the Prometheus / OpenMetrics text format).
    enum StatusFormat {
        case text, json, openMetrics
    }

    /// The page `start` asks for, if monitoring serves it.
    init?(_ start: RequestStart, monitoring: Monitoring) {
        guard monitoring.pingPath != nil || monitoring.statusPath != nil else { return nil }
        let params = CGIEnvironment(block: start.paramsBlock)
        var path = params["SCRIPT_NAME"] ?? ""
        if path.isEmpty, let uri = params["REQUEST_URI"] { path = String(uri.prefix { $0 != "?" }) }
        let items = (params["QUERY_STRING"] ?? "").split(separator: "&")
        func asks(_ name: String) -> Bool { items.contains { $0 == name || $0.hasPrefix(name + "=") } }
        if let ping = monitoring.pingPath, path == ping {
            self = .ping(pool: asks("pool"))
        } else if let status = monitoring.statusPath, path == status {
            self = .status(asks("openmetrics") ? .openMetrics : asks("json") ? .json : .text, full: asks("full"))
        } else {
            return nil
        }
    }

    /// A pool's serving workers whose heartbeat is older than three beats;
    /// nil outside a pool.
    static func silentWorkers(_ engine: Engine) -> [PoolBoard.Worker]? {
        guard let board = engine.server.state.withLock({ $0.poolSlot?.board }) else { return nil }
        let limit = Int(3 * PoolReporter.interval * 1000)
        return board.workers.filter { $0.ready && ($0.silentFor ?? 0) > limit }
    }

    /// The response as STDOUT records (not closed).
    func records(requestID: UInt16, engine: Engine) -> [UInt8] {
        let response: String
        switch self {
        case .ping(let pool):
            if pool, let silent = Self.silentWorkers(engine), !silent.isEmpty {
                // A worker stopped publishing (stopped, wedged): the pool is not
                // healthy, though this worker answers.
                let names = silent.map { "\($0.pid) (\($0.silentFor.map { "\($0) ms" } ?? "?"))" }
                response =
                    "Status: 503 Service Unavailable\r\nContent-Type: text/plain\r\nCache-Control: no-cache\r\n\r\n"
                    + "workers without a heartbeat: \(names.joined(separator: ", "))\n"
            } else {
                let body = engine.server.monitoring.pingResponse + "\n"
                response = "Content-Type: text/plain\r\nCache-Control: no-cache\r\n\r\n" + body
            }
        case .status(let format, let full):
            let status = StatusReport(engine: engine, full: full)
            let (type, body) =
                switch format {
                case .text: ("text/plain", status.text)
                case .json: ("application/json", status.json)
                case .openMetrics: ("application/openmetrics-text; version=1.0.0; charset=utf-8", status.openMetrics)
                }
            response = "Content-Type: \(type)\r\nCache-Control: no-cache\r\n\r\n" + body
        }
        var out: [UInt8] = []
        StreamWriter.append(Array(response.utf8), type: .stdout, requestID: requestID, close: false, into: &out)
        return out
    }
}

/// The figures on the status page, in PHP-FPM's terms where they exist.
struct StatusReport {
    var fields: [(label: String, value: Value)] = []

    enum Value {
        case number(Int)
        case text(String)
        /// The pool's workers (a process manager's pool), one line or object each.
        case workers([PoolBoard.Worker])
        /// The open connections (`?full`), one line or object each.
        case connections([ConnectionSnapshot])
    }

    init(engine: Engine, full: Bool = false) {
        let s = engine.statistics
        let server = engine.server
        let workers = engine.executor.workerCounts
        // In a process manager's pool every figure is the pool's, whichever
        // worker answers: counters summed over the live workers and those
        // that exited, gauges over the live ones.
        let board = server.state.withLock { $0.poolSlot?.board }
        let totals = board?.totals
        func counter(_ local: Int, _ pooled: PoolBoard.Counter) -> Value { .number(totals?[pooled] ?? local) }
        func gauge(_ local: Int, _ pooled: PoolBoard.Field) -> Value { .number(board?.sum(pooled) ?? local) }
        let startTime = board.map { $0[.startTime] } ?? Int(s.startTime)
        fields = [
            ("pool", Value.text("swift-fcgi")),
            ("threading level", .number(server.threadingLevel.rawValue)),
            ("start time", .number(startTime)),
            ("start since", .number(max(0, Int(WallClock.seconds()) - startTime))),
            ("accepted conn", counter(s.acceptedConnections.value, .accepted)),
            ("open connections", gauge(s.openConnections.value, .openConnections)),
            ("requests served", counter(s.requestsFinished.value, .requests)),
            ("requests in flight", gauge(s.inFlight, .inFlight)),
            ("max requests in flight", .number(board?.highest(.maxInFlight) ?? s.maxInFlight.value)),
        ]
        // Per process only: no pool-wide meaning.
        if board == nil { fields.append(("max requests on one connection", .number(s.maxPerConnection.value))) }
        let threadsTotal = board.map { $0.sum(.busyThreads) + $0.sum(.idleThreads) } ?? workers.busy + workers.idle
        fields += [
            ("active workers" as String, gauge(workers.busy, .busyThreads)),
            ("idle workers", gauge(workers.idle, .idleThreads)),
            ("total workers", .number(threadsTotal)),
            ("limit hits", counter(s.limitHits.value, .limitHits)),
            ("refused requests", counter(s.refusedRequests.value, .refused)),
            ("aborted requests", counter(s.abortedRequests.value, .aborted)),
            ("slow requests", counter(s.slowRequests.value, .slow)),
            ("timed out requests", counter(s.timedOutRequests.value, .timedOut)),
            ("stalled requests", counter(s.stalledRequests.value, .stalled)),
            ("send timeouts", counter(s.sendTimeouts.value, .sendTimeouts)),
            ("get-values answered", counter(s.getValuesAnswered.value, .getValues)),
        ]
        if let board, let totals {
            let workers = board.workers
            fields += [
                ("pool processes", .number(workers.count)),
                ("pool generation", .number(board[.generation])),
                ("pool crashes", .number(board[.crashes])),
                ("pool recycled", .number(board[.recycled])),
                ("pool reloads", .number(board[.reloads])),
                ("pool hung", .number(board[.hung])),
                ("pool requests served", .number(totals[.requests] ?? 0)),
                ("pool workers", .workers(workers)),
            ]
        }
        if full { fields.append(("connections", .connections(engine.connectionSnapshots))) }
    }

    /// `label: value` lines, aligned as PHP-FPM's page.
    var text: String {
        var out = ""
        for field in fields {
            let label = field.label + ":"
            out += label + String(repeating: " ", count: max(1, 32 - label.count))
            switch field.value {
            case .number(let n): out += "\(n)\n"
            case .text(let t): out += t + "\n"
            case .workers(let workers):
                out += "\(workers.count)\n"
                for w in workers {
                    out +=
                        "  pid \(w.pid): generation \(w.generation), \(w.ready ? "serving" : "starting"), "
                        + "requests \(w.requests), rss \(w.residentBytes >> 20) MiB, start time \(w.startTime), "
                        + "heartbeat \(w.silentFor.map { "\($0) ms ago" } ?? "not yet")\n"
                }
            case .connections(let connections):
                out += "\(connections.count)\n"
                let now = WallClock.seconds()
                for c in connections {
                    out +=
                        "  connection \(c.number): peer \(c.peer), \(c.parked ? "parked" : "served"), "
                        + "in flight \(c.inFlight), served \(c.served), open \(Int(now - c.openedAt)) s\n"
                }
            }
        }
        return out
    }

    /// One JSON object with the same keys as PHP-FPM's `?json` where they exist.
    var json: String {
        var items: [String] = []
        for field in fields {
            switch field.value {
            case .number(let n): items.append("\"\(field.label)\":\(n)")
            case .text(let t): items.append("\"\(field.label)\":\"\(t)\"")
            case .workers(let workers):
                let objects = workers.map { w in
                    "{\"pid\":\(w.pid),\"generation\":\(w.generation),\"ready\":\(w.ready),\"requests\":\(w.requests),"
                        + "\"rss\":\(w.residentBytes),\"start time\":\(w.startTime),"
                        + "\"heartbeat age ms\":\(w.silentFor.map(String.init) ?? "null")}"
                }
                items.append("\"\(field.label)\":[" + objects.joined(separator: ",") + "]")
            case .connections(let connections):
                let objects = connections.map { c in
                    "{\"connection\":\(c.number),\"peer\":\"\(c.peer)\",\"state\":\"\(c.parked ? "parked" : "served")\","
                        + "\"in flight\":\(c.inFlight),\"served\":\(c.served),\"start time\":\(Int(c.openedAt))}"
                }
                items.append("\"\(field.label)\":[" + objects.joined(separator: ",") + "]")
            }
        }
        return "{" + items.joined(separator: ",") + "}\n"
    }

    /// The figures that only grow: OpenMetrics counters (the rest are gauges).
    static let counters: Set<String> = [
        "accepted conn", "requests served", "limit hits", "refused requests", "aborted requests", "slow requests",
        "timed out requests", "stalled requests", "send timeouts", "get-values answered", "pool crashes", "pool recycled",
        "pool reloads", "pool hung", "pool requests served",
    ]

    /// Figures in seconds: OpenMetrics wants the unit in the name.
    static let seconds: Set<String> = ["start time", "start since"]

    /// The OpenMetrics text format (Prometheus scrapes it): each number as
    /// `fastcgi_<label>` (`_seconds` for times), counters with `_total`. In a
    /// pool every unlabelled series is the pool's, the same from any worker;
    /// the workers' own are labelled `worker="PID"`.
    var openMetrics: String {
        var out = ""
        for field in fields {
            var name = "fastcgi_" + field.label.map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined()
            if Self.seconds.contains(field.label) { name += "_seconds" }
            switch field.value {
            case .number(let n):
                let counter = Self.counters.contains(field.label)
                out += "# TYPE \(name) \(counter ? "counter" : "gauge")\n# HELP \(name) \(field.label)\n"
                out += "\(name)\(counter ? "_total" : "") \(n)\n"
            case .text, .connections:
                continue  // a series per connection would churn: ?full is for people
            case .workers(let workers):
                out += "# TYPE \(name)_requests counter\n# HELP \(name)_requests requests served by each worker\n"
                for w in workers { out += "\(name)_requests_total{worker=\"\(w.pid)\"} \(w.requests)\n" }
                out += "# TYPE \(name)_rss_bytes gauge\n# HELP \(name)_rss_bytes each worker's resident memory\n"
                for w in workers { out += "\(name)_rss_bytes{worker=\"\(w.pid)\"} \(w.residentBytes)\n" }
                out += "# TYPE \(name)_ready gauge\n# HELP \(name)_ready whether each worker serves\n"
                for w in workers { out += "\(name)_ready{worker=\"\(w.pid)\"} \(w.ready ? 1 : 0)\n" }
                out += "# TYPE \(name)_heartbeat_age_seconds gauge\n"
                out += "# HELP \(name)_heartbeat_age_seconds time since each worker's last heartbeat\n"
                for w in workers {
                    guard let silent = w.silentFor else { continue }
                    out += "\(name)_heartbeat_age_seconds{worker=\"\(w.pid)\"} \(Double(silent) / 1000)\n"
                }
            }
        }
        return out + "# EOF\n"
    }
}

/// One open connection as the full status page (`?full`) shows it.
struct ConnectionSnapshot: Sendable {
    var number: Int
    /// The peer's address (`unix` for a unix socket).
    var peer: String
    /// When it was accepted (seconds since the epoch).
    var openedAt: Double
    /// Idle in the poller, holding no thread.
    var parked: Bool
    var inFlight: Int
    /// Requests ended on it so far.
    var served: Int
}
