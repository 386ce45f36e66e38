import Testing

@testable import FastCGI

/// The process manager's decisions, without processes: events in, actions out.
@Suite("WorkerPool: the process manager's logic")
struct WorkerPoolTests {
    /// A pool of `size` whose first generation was spawned and became ready.
    func servingPool(_ size: Int = 2) -> (WorkerPool, [Int32]) {
        var pool = WorkerPool(size: size, stopTimeout: 5)
        #expect(pool.handle(.start, at: 0) == Array(repeating: .spawn(generation: 1), count: size))
        let pids = (1...size).map { Int32(100 + $0) }
        for pid in pids { #expect(pool.handle(.spawned(pid: pid, generation: 1), at: 0).isEmpty) }
        for pid in pids.dropLast() { #expect(pool.handle(.ready(pid: pid), at: 0.1).isEmpty) }
        // The whole first generation serves: systemd hears READY=1, once.
        #expect(pool.handle(.ready(pid: pids.last!), at: 0.1) == [.announce(.ready)])
        return (pool, pids)
    }

    func spawns(_ actions: [WorkerPool.Action]) -> [Int] {
        actions.compactMap { if case .spawn(let generation) = $0 { generation } else { nil } }
    }

    @Test("a crash after start-up is replaced at once; a clean exit (its maxRequests) too")
    func replacement() {
        var (pool, pids) = servingPool()
        #expect(spawns(pool.handle(.exited(pid: pids[0], status: .signaled(9)), at: 10)) == [1])
        #expect(spawns(pool.handle(.exited(pid: pids[1], status: .exited(0)), at: 11)) == [1])
        #expect(pool.crashes == 1 && pool.recycled == 1)
        #expect(pool.workers.isEmpty && pool.nextDeadline == nil)
    }

    @Test("a silent worker is killed once, counted as hung not crashed, and replaced at once")
    func unresponsive() {
        var (pool, pids) = servingPool()
        let actions = pool.handle(.unresponsive(pid: pids[0], seconds: 31.04), at: 40)
        #expect(actions.contains(.kill(pid: pids[0])))
        #expect(
            actions.contains { if case .log(.error, let text) = $0 { text.contains("no heartbeat for 31.0 s") } else { false } })
        #expect(pool.handle(.unresponsive(pid: pids[0], seconds: 32), at: 41).isEmpty, "killed once")
        #expect(spawns(pool.handle(.exited(pid: pids[0], status: .signaled(9)), at: 41)) == [1])
        #expect(pool.hung == 1 && pool.crashes == 0 && pool.earlyDeaths == 0)
        // Not before it serves: a worker still starting has published nothing to judge.
        _ = pool.handle(.spawned(pid: 300, generation: 1), at: 41)
        #expect(pool.handle(.unresponsive(pid: 300, seconds: 60), at: 42).isEmpty)
    }

    @Test("deaths at start-up back off: 0.1 s, 0.2 s, 0.4 s …, reset once a worker is ready")
    func backoff() {
        var (pool, pids) = servingPool(1)
        var now = 10.0
        // The first worker served for 10 s: replaced at once.
        #expect(spawns(pool.handle(.exited(pid: pids[0], status: .signaled(5)), at: now)) == [1])
        var pid = pids[0] + 1
        _ = pool.handle(.spawned(pid: pid, generation: 1), at: now)
        for expected in [0.1, 0.2, 0.4, 0.8] {
            _ = pool.handle(.exited(pid: pid, status: .signaled(5)), at: now)  // SIGTRAP, before ready
            #expect(pool.nextDeadline.map { ($0 - now) * 1000 }?.rounded() == expected * 1000)
            #expect(pool.handle(.tick, at: now + expected / 2).isEmpty, "not before it is due")
            now += expected
            #expect(spawns(pool.handle(.tick, at: now)) == [1])
            pid += 1
            _ = pool.handle(.spawned(pid: pid, generation: 1), at: now)
        }
        _ = pool.handle(.ready(pid: pid), at: now)
        #expect(pool.earlyDeaths == 0)
        _ = pool.handle(.exited(pid: pid, status: .signaled(11)), at: now + 5)
        #expect(pool.nextDeadline == nil, "a worker that served dies: replaced at once")
    }

    @Test("reload: a new generation starts; the old drains only once all of it is ready")
    func reload() {
        var (pool, old) = servingPool()
        let reloading = pool.handle(.reload, at: 20)
        #expect(spawns(reloading) == [2, 2] && reloading.first == .announce(.reloading))
        _ = pool.handle(.spawned(pid: 201, generation: 2), at: 20)
        _ = pool.handle(.spawned(pid: 202, generation: 2), at: 20)
        #expect(pool.handle(.ready(pid: 201), at: 20.1).allSatisfy { if case .drain = $0 { false } else { true } })
        let actions = pool.handle(.ready(pid: 202), at: 20.2)
        #expect(actions.filter { if case .drain = $0 { true } else { false } } == old.map { .drain(pid: $0) })
        #expect(actions.last == .announce(.ready))
        #expect(pool.generation == 2)
        // The old ones exit as asked: nothing is started for them.
        for pid in old { #expect(spawns(pool.handle(.exited(pid: pid, status: .exited(0)), at: 21)).isEmpty) }
        #expect(pool.workers.keys.sorted() == [201, 202])
    }

    @Test("reload abandoned when a new worker dies before it is ready; the old generation serves on")
    func reloadAbandoned() {
        var (pool, old) = servingPool()
        _ = pool.handle(.reload, at: 20)
        _ = pool.handle(.spawned(pid: 201, generation: 2), at: 20)
        _ = pool.handle(.spawned(pid: 202, generation: 2), at: 20)
        let actions = pool.handle(.exited(pid: 201, status: .signaled(5)), at: 20.1)
        #expect(actions.contains(.drain(pid: 202)) && actions.last == .announce(.ready))
        #expect(spawns(actions).isEmpty)
        #expect(pool.generation == 1 && pool.phase == .serving)
        #expect(Set(pool.workers.keys).isSuperset(of: old))
        // And a reload that never gets ready times out the same way.
        _ = pool.handle(.reload, at: 30)
        _ = pool.handle(.spawned(pid: 301, generation: 3), at: 30)
        #expect(pool.handle(.tick, at: 30 + WorkerPool.readyTimeout).contains(.drain(pid: 301)))
        #expect(pool.phase == .serving)
    }

    @Test("stop: every worker drains, the stragglers are killed after the timeout, then finished")
    func stop() {
        var (pool, pids) = servingPool()
        let stopping = pool.handle(.stop, at: 50)
        #expect(stopping.first == .announce(.stopping))
        #expect(stopping.filter { if case .drain = $0 { true } else { false } } == pids.map { .drain(pid: $0) })
        #expect(pool.handle(.exited(pid: pids[0], status: .exited(0)), at: 51).isEmpty)
        #expect(pool.handle(.tick, at: 55).contains(.kill(pid: pids[1])))
        #expect(pool.handle(.exited(pid: pids[1], status: .signaled(9)), at: 55.1).contains(.finished))
        #expect(pool.isFinished)
    }

    @Test("a worker over the memory limit: a replacement starts, then it drains")
    func tooBig() {
        var (pool, pids) = servingPool()
        let actions = pool.handle(.tooBig(pid: pids[0], bytes: 900 << 20), at: 5)
        #expect(Array(actions.dropFirst()) == [.spawn(generation: 1), .drain(pid: pids[0])])
        #expect(pool.handle(.tooBig(pid: pids[0], bytes: 900 << 20), at: 6).isEmpty, "once")
        #expect(spawns(pool.handle(.exited(pid: pids[0], status: .exited(0)), at: 7)).isEmpty)
    }
}
