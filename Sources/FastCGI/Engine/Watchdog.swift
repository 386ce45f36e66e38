import FastCGIWire
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Watches running requests for ``Monitoring/slowRequestThreshold`` and
/// ``Monitoring/requestTimeout``: a thread that wakes a few times per threshold,
/// logs a slow request once, and ends a request past the timeout through its sink
/// (the handler's thread itself cannot be stopped).
final class Watchdog: @unchecked Sendable {
    private struct Key: Hashable {
        let connection: Int
        let request: UInt16
    }

    private struct Entry {
        let started: Double
        let scriptName: String
        let uri: String
        let sink: any RequestSink
        /// The connection's logger (made only when it logs).
        let connection: Connection
        let requestID: UInt16
        var logger: Logger {
            var logger = connection.logger
            logger[metadataKey: "request"] = "\(requestID)"
            return logger
        }
        var slowLogged = false
        var timedOut = false
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var stopped = false
    }

    private let state = Guarded(State())
    private let slow: Double?
    private let timeout: Double?
    private let statistics: ServerStatistics

    init(monitoring: Monitoring, statistics: ServerStatistics) throws {
        slow = monitoring.slowRequestThreshold?.seconds
        timeout = monitoring.requestTimeout?.seconds
        self.statistics = statistics
        let shortest = [slow, timeout].compactMap { $0 }.min() ?? 1
        let tick = min(max(shortest / 4, 0.01), 0.5)
        try OSThread.spawn(stackSize: 128 << 10) { [self] in loop(tick: tick) }
    }

    /// A request started on `connection`.
    func started(_ start: RequestStart, sink: any RequestSink, on connection: Connection) {
        let params = CGIEnvironment(block: start.paramsBlock)
        let scriptName = params["SCRIPT_NAME"] ?? ""
        let uri = params["REQUEST_URI"] ?? ""
        let entry = Entry(
            started: MonotonicClock.seconds(), scriptName: scriptName, uri: uri, sink: sink, connection: connection,
            requestID: start.requestID)
        state.withLock { $0.entries[Key(connection: connection.number, request: start.requestID)] = entry }
    }

    /// The request ended (normally, aborted or timed out).
    func ended(_ requestID: UInt16, on connection: Connection) {
        state.withLock { _ = $0.entries.removeValue(forKey: Key(connection: connection.number, request: requestID)) }
    }

    func stop() { state.withLock { $0.stopped = true } }

    private func loop(tick: Double) {
        while true {
            let stopped = state.wait(until: { $0.stopped }, timeout: tick) { _ in true } ?? false
            if stopped { return }
            let now = MonotonicClock.seconds()
            var slowOnes: [Entry] = []
            var expired: [Entry] = []
            state.withLock { s in
                for (key, entry) in s.entries {
                    let elapsed = now - entry.started
                    if let slow, elapsed >= slow, !entry.slowLogged {
                        s.entries[key]!.slowLogged = true
                        slowOnes.append(entry)
                    }
                    if let timeout, elapsed >= timeout, !entry.timedOut {
                        s.entries[key]!.timedOut = true
                        expired.append(entry)
                    }
                }
            }
            for entry in slowOnes {
                statistics.slowRequests.increment()
                entry.logger.warning(
                    "slow request: running for \(Self.format(now - entry.started)) s",
                    metadata: ["SCRIPT_NAME": "\(entry.scriptName)", "REQUEST_URI": "\(entry.uri)"])
            }
            for entry in expired {
                statistics.count(.timeout)
                entry.logger.error(
                    "request timed out after \(Self.format(now - entry.started)) s: ended, its handler runs on until it returns",
                    metadata: ["SCRIPT_NAME": "\(entry.scriptName)", "REQUEST_URI": "\(entry.uri)"])
                entry.sink.timeOut(.request)
            }
        }
    }

    private static func format(_ seconds: Double) -> String {
        let tenths = Int((seconds * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}
