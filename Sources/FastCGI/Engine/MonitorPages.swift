import FastCGIWire

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The pages the connection thread answers itself (``Monitoring``): ping and
/// status, plus the 504 page of a request that timed out.
enum MonitorPage {
    case ping
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
        if let ping = monitoring.pingPath, path == ping {
            self = .ping
        } else if let status = monitoring.statusPath, path == status {
            let items = (params["QUERY_STRING"] ?? "").split(separator: "&")
            func asks(_ name: String) -> Bool { items.contains { $0 == name || $0.hasPrefix(name + "=") } }
            self = .status(asks("openmetrics") ? .openMetrics : asks("json") ? .json : .text, full: asks("full"))
        } else {
            return nil
        }
    }

    /// The response as STDOUT records (not closed).
    func records(requestID: UInt16, engine: Engine) -> [UInt8] {
        let response: String
        switch self {
        case .ping:
            let body = engine.server.monitoring.pingResponse + "\n"
            response = "Content-Type: text/plain\r\nCache-Control: no-cache\r\n\r\n" + body
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
        let since = max(0, Int(WallClock.seconds() - s.startTime))
        fields = [
            ("pool", .text("swift-fcgi")),
            ("threading level", .number(server.threadingLevel.rawValue)),
            ("start time", .number(Int(s.startTime))),
            ("start since", .number(since)),
            ("accepted conn", .number(s.acceptedConnections.value)),
            ("open connections", .number(s.openConnections.value)),
            ("requests served", .number(s.requestsFinished.value)),
            ("requests in flight", .number(s.inFlight)),
            ("max requests in flight", .number(s.maxInFlight.value)),
            ("max requests on one connection", .number(s.maxPerConnection.value)),
            ("active workers", .number(workers.busy)),
            ("idle workers", .number(workers.idle)),
            ("total workers", .number(workers.busy + workers.idle)),
            ("limit hits", .number(s.limitHits.value)),
            ("refused requests", .number(s.refusedRequests.value)),
            ("aborted requests", .number(s.abortedRequests.value)),
            ("slow requests", .number(s.slowRequests.value)),
            ("timed out requests", .number(s.timedOutRequests.value)),
            ("stalled requests", .number(s.stalledRequests.value)),
            ("send timeouts", .number(s.sendTimeouts.value)),
            ("get-values answered", .number(s.getValuesAnswered.value)),
        ]
        // A worker of a process manager's pool shows the whole pool too.
        if let board = server.state.withLock({ $0.poolSlot?.board }) {
            let workers = board.workers
            fields += [
                ("pool processes", .number(workers.count)),
                ("pool generation", .number(board[.generation])),
                ("pool crashes", .number(board[.crashes])),
                ("pool recycled", .number(board[.recycled])),
                ("pool reloads", .number(board[.reloads])),
                ("pool requests served", .number(workers.reduce(0) { $0 + $1.requests })),
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
                        + "requests \(w.requests), rss \(w.residentBytes >> 20) MiB, start time \(w.startTime)\n"
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
                        + "\"rss\":\(w.residentBytes),\"start time\":\(w.startTime)}"
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
        "pool reloads", "pool requests served",
    ]

    /// The OpenMetrics text format (Prometheus scrapes it): each number as
    /// `fastcgi_<label>`, counters with `_total`, the pool's workers labelled by pid.
    var openMetrics: String {
        var out = ""
        for field in fields {
            let name = "fastcgi_" + field.label.map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined()
            switch field.value {
            case .number(let n):
                let counter = Self.counters.contains(field.label)
                out += "# TYPE \(name) \(counter ? "counter" : "gauge")\n# HELP \(name) \(field.label)\n"
                out += "\(name)\(counter ? "_total" : "") \(n)\n"
            case .text, .connections:
                continue  // a series per connection would churn: ?full is for people
            case .workers(let workers):
                out += "# TYPE \(name)_requests counter\n# HELP \(name)_requests requests served by each worker\n"
                for w in workers { out += "\(name)_requests_total{pid=\"\(w.pid)\"} \(w.requests)\n" }
                out += "# TYPE \(name)_rss_bytes gauge\n# HELP \(name)_rss_bytes each worker's resident memory\n"
                for w in workers { out += "\(name)_rss_bytes{pid=\"\(w.pid)\"} \(w.residentBytes)\n" }
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
