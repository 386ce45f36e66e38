/// At most `limit` async handlers at once (threading levels 0 and 1): a task
/// waiting for a slot is suspended, holding no thread. Slots are given in the
/// order they were asked for.
final class AsyncSlots: Sendable {
    private struct State {
        var free: Int
        var waiting: [CheckedContinuation<Void, Never>] = []
        var head = 0
    }

    private let state: Guarded<State>

    init(limit: Int) { state = Guarded(State(free: max(1, limit))) }

    /// Waits for a slot.
    func enter() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                guard s.free > 0 else {
                    s.waiting.append(waiter)
                    return false
                }
                s.free -= 1
                return true
            }
            if now { waiter.resume() }
        }
    }

    /// Gives the slot back: to the longest waiting task, if any.
    func leave() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard s.head < s.waiting.count else {
                s.free += 1
                return nil
            }
            defer {
                s.head += 1
                if s.head == s.waiting.count {
                    s.waiting.removeAll(keepingCapacity: true)
                    s.head = 0
                }
            }
            return s.waiting[s.head]
        }
        next?.resume()
    }
}
