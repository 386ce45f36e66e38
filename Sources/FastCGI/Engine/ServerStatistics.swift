import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Counters the engine keeps while it runs, for logs and the status page. Updated
/// with atomics from the connection and request threads.
final class ServerStatistics: Sendable {
    /// When the server started (seconds since the epoch).
    let startTime: Double
    let acceptedConnections = Atomic<Int>(0)
    let openConnections = Atomic<Int>(0)
    let requestsStarted = Atomic<Int>(0)
    let requestsFinished = Atomic<Int>(0)
    let maxInFlight = Atomic<Int>(0)
    /// Requests refused or connections closed because a limit was reached.
    let limitHits = Atomic<Int>(0)
    /// Requests refused without running (unknown role, CANT_MPX_CONN, OVERLOADED).
    let refusedRequests = Atomic<Int>(0)
    /// Requests aborted by the web server (FCGI_ABORT_REQUEST or a lost connection).
    let abortedRequests = Atomic<Int>(0)
    /// Requests that ran longer than the slow-request threshold.
    let slowRequests = Atomic<Int>(0)
    /// Requests ended by the request timeout.
    let timedOutRequests = Atomic<Int>(0)
    /// Requests ended because their input stalled (``ConnectionLimits/inputTimeout``).
    let stalledRequests = Atomic<Int>(0)
    /// Connections closed because their peer read nothing for the send timeout
    /// (``ConnectionLimits/sendTimeout``).
    let sendTimeouts = Atomic<Int>(0)
    /// FCGI_GET_VALUES records answered.
    let getValuesAnswered = Atomic<Int>(0)
    /// The most requests seen running at once on one connection (multiplexing).
    let maxPerConnection = Atomic<Int>(0)

    /// The same events through swift-metrics, when a factory is set.
    private let metrics: RequestMetrics?

    init(metrics: RequestMetrics? = nil) {
        startTime = WallClock.seconds()
        self.metrics = metrics
    }

    /// Counts a request that went wrong, on the status page and in the metrics.
    func count(_ kind: RequestMetrics.ErrorKind) {
        switch kind {
        case .handler: break  // counted by Server.serve, which sees the error
        case .aborted: abortedRequests.increment()
        case .timeout: timedOutRequests.increment()
        case .inputTimeout: stalledRequests.increment()
        case .sendTimeout: sendTimeouts.increment()
        case .refused: refusedRequests.increment()
        case .limit: limitHits.increment()
        }
        metrics?.count(kind)
    }

    /// Counts a request in and keeps the highest number in flight.
    func requestStarted() {
        let started = requestsStarted.add(1, ordering: .relaxed).newValue
        maxInFlight.raise(to: started - requestsFinished.load(ordering: .relaxed))
    }

    func requestFinished() {
        requestsFinished.add(1, ordering: .relaxed)
    }

    /// Each counter by its name on the pool's board (a pool worker publishes
    /// them to its slot).
    var poolCounters: [(PoolBoard.Counter, Int)] {
        [
            (.requests, requestsFinished.value), (.accepted, acceptedConnections.value), (.limitHits, limitHits.value),
            (.refused, refusedRequests.value), (.aborted, abortedRequests.value), (.slow, slowRequests.value),
            (.timedOut, timedOutRequests.value), (.stalled, stalledRequests.value), (.sendTimeouts, sendTimeouts.value),
            (.getValues, getValuesAnswered.value),
        ]
    }

    var inFlight: Int { requestsStarted.load(ordering: .relaxed) - requestsFinished.load(ordering: .relaxed) }
}

extension Atomic where Value == Int {
    /// Adds one (relaxed ordering: counters only).
    func increment() { add(1, ordering: .relaxed) }
    /// The value (relaxed ordering: counters only).
    var value: Int { load(ordering: .relaxed) }
    /// Keeps the higher of `candidate` and the value.
    func raise(to candidate: Int) {
        var seen = load(ordering: .relaxed)
        while candidate > seen {
            let (exchanged, original) = compareExchange(expected: seen, desired: candidate, ordering: .relaxed)
            if exchanged { break }
            seen = original
        }
    }
}
