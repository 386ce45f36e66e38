/// Which requests on a connection are waiting for input, and since when. A
/// request whose stdin (or, for a filter, `FCGI_DATA`) has not ended and got no
/// bytes for ``timeout`` seconds has stalled (``ConnectionLimits/inputTimeout``).
///
/// Pure bookkeeping: the connection reports starts, input and ends with the time,
/// asks for the next deadline (how long its thread may wait) and takes the
/// requests past it. Kept under the connection's state lock.
struct InputStalls {
    private struct Waiting {
        var lastInput: Double
        var stdinOpen = true
        var dataOpen: Bool
    }

    /// Seconds without input before a request has stalled; nil: never.
    let timeout: Double?
    private var waiting: [UInt16: Waiting] = [:]

    init(timeout: Double?) { self.timeout = timeout }

    /// Whether anything is tracked at all (no clock reads otherwise).
    var isActive: Bool { timeout != nil }

    /// A request started; a filter also waits for its data stream.
    mutating func started(_ id: UInt16, filter: Bool, at now: Double) {
        guard timeout != nil else { return }
        waiting[id] = Waiting(lastInput: now, dataOpen: filter)
    }

    /// Input for `id` arrived (`ended`: the stream's end record).
    mutating func received(_ id: UInt16, stdin: Bool, ended: Bool, at now: Double) {
        guard timeout != nil, var entry = waiting[id] else { return }
        entry.lastInput = now
        if ended {
            if stdin { entry.stdinOpen = false } else { entry.dataOpen = false }
        }
        waiting[id] = entry.stdinOpen || entry.dataOpen ? entry : nil
    }

    /// The request ended: it waits for nothing.
    mutating func ended(_ id: UInt16) {
        if !waiting.isEmpty { waiting[id] = nil }
    }

    /// When the next request stalls, if one waits.
    var nextDeadline: Double? {
        guard let timeout, let oldest = waiting.values.lazy.map(\.lastInput).min() else { return nil }
        return oldest + timeout
    }

    /// The requests stalled at `now`, no longer tracked.
    mutating func takeStalled(at now: Double) -> [UInt16] {
        guard let timeout else { return [] }
        let stalled = waiting.filter { now - $0.value.lastInput >= timeout }.keys.sorted()
        for id in stalled { waiting[id] = nil }
        return stalled
    }
}
