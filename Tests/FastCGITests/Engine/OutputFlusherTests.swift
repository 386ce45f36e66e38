import Foundation
import Logging
import Testing

@testable import FastCGI

/// A connection's output side alone, on a socketpair: what the flusher needs.
final class FakeFlushTarget: FlushTarget, @unchecked Sendable {
    let number: Int
    let descriptor: FileDescriptor
    let outbox = Guarded(Outbox(queued: SpillBuffer(memoryLimit: 64 << 10, directory: NSTemporaryDirectory())))
    let timeouts = Guarded(0)

    init(number: Int, descriptor: FileDescriptor) {
        self.number = number
        self.descriptor = descriptor
    }

    /// Writes as a connection does; true when the flusher must watch it.
    func write(_ bytes: [UInt8], clock: @escaping () -> Double) -> Bool {
        outbox.withLock { o in bytes.withUnsafeBytes { o.send($0, on: descriptor, clock: clock) } }
    }

    func flushQueued(staging: inout [UInt8], now: Double) -> Outbox.FlushOutcome {
        outbox.withLock { $0.flush(on: descriptor, staging: &staging, now: now) }
    }
    var outputWatched: Bool { outbox.withLock { $0.watched } }
    func endIfSendTimedOut(now: Double, timeout: Double) -> Bool {
        outbox.withLock { $0.endIfTimedOut(on: descriptor, now: now, timeout: timeout) }
    }
    func sendTimedOut(after seconds: Double) { timeouts.withLock { $0 += 1 } }
}

/// The flusher's thread on real sockets with a fake clock: it sends what a
/// slow peer takes, lets a connection go once sent, and ends one whose peer
/// takes nothing for the send timeout — by its clock, not before.
@Suite("OutputFlusher: sends for slow readers, ends silent ones")
struct OutputFlusherTests {
    /// A clock the test moves.
    final class FakeClock: @unchecked Sendable {
        let now = Guarded(100.0)
        func read() -> Double { now.withLock { $0 } }
    }

    static func waitFor(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
        let deadline = MonotonicClock.seconds() + seconds
        while MonotonicClock.seconds() < deadline {
            if condition() { return true }
            MonotonicClock.sleep(seconds: 0.002)
        }
        return condition()
    }

    @Test("2 MiB queued behind a 4 KiB socket buffer: sent in order as the peer reads, then let go")
    func sendsForSlowReader() throws {
        let clock = FakeClock()
        let counted = Guarded(0)
        let flusher = try OutputFlusher(
            sendTimeout: 60, logger: Logger(label: "test"), clock: clock.read, timedOut: { counted.withLock { $0 += 1 } })
        defer { flusher.stop() }
        let (ours, peer) = try FileDescriptor.socketPair(sendBuffer: 4096)
        let target = FakeFlushTarget(number: 1, descriptor: ours)
        let page = SpillBufferTests.bytes(2 << 20, from: 5)
        #expect(target.write(page, clock: clock.read))
        flusher.watch(target)
        // The peer reads in small bites, with pauses: the flusher keeps up.
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 3000)
        while received.count < page.count {
            let n = try chunk.withUnsafeMutableBytes { try peer.read(into: $0) }
            guard n > 0 else { break }
            received += chunk[..<n]
        }
        #expect(received == page)
        #expect(flusher.waitUntilSent(timeout: 10))
        #expect(!target.outputWatched)
        #expect(counted.withLock { $0 } == 0)
    }

    @Test("a peer that reads nothing: ended once the clock passes the send timeout, not before")
    func endsSilentPeer() throws {
        let clock = FakeClock()
        let counted = Guarded(0)
        // 40 ms: the flusher looks every 10 ms.
        let flusher = try OutputFlusher(
            sendTimeout: 0.04, logger: Logger(label: "test"), clock: clock.read,
            timedOut: { counted.withLock { $0 += 1 } })
        defer { flusher.stop() }
        let (ours, peer) = try FileDescriptor.socketPair(sendBuffer: 4096)
        let target = FakeFlushTarget(number: 7, descriptor: ours)
        #expect(target.write(SpillBufferTests.bytes(1 << 20, from: 0), clock: clock.read))
        flusher.watch(target)
        // The clock stands still just below the timeout: a dozen of the
        // flusher's looks and the connection is still open.
        clock.now.withLock { $0 = 100.039 }
        MonotonicClock.sleep(seconds: 0.12)
        #expect(counted.withLock { $0 } == 0)
        #expect(target.outbox.withLock { $0.side } == .open)
        clock.now.withLock { $0 = 100.05 }
        #expect(Self.waitFor { counted.withLock { $0 } == 1 })
        #expect(target.timeouts.withLock { $0 } == 1)
        #expect(target.outbox.withLock { $0.side } == .failed)
        #expect(flusher.waitUntilSent(timeout: 1), "let go once ended")
        // The peer reads what had been sent, then the end.
        var chunk = [UInt8](repeating: 0, count: 65536)
        var total = 0
        while let n = try? chunk.withUnsafeMutableBytes({ try peer.read(into: $0) }), n > 0 { total += n }
        #expect(total > 0 && total < 1 << 20)
    }
}

/// The serving threads' pool: a bound on ordinary jobs, urgent ones past it.
@Suite("ThreadPool: bounded, first come first served, urgent jobs at once")
struct ThreadPoolTests {
    @Test("past maxThreads ordinary jobs wait in order; an urgent one runs at once", arguments: [1, 2])
    func boundedAndUrgent(maxThreads: Int) throws {
        let pool = ThreadPool(keepIdle: 2, maxThreads: maxThreads)
        defer { pool.shutdown() }
        let gate = Guarded(false)
        let started = Guarded(0)
        for _ in 0..<maxThreads {
            pool.run {
                started.withLock { $0 += 1 }
                _ = gate.wait(until: { $0 }) { _ in }
            }
        }
        #expect(OutputFlusherTests.waitFor { started.withLock { $0 } == maxThreads })
        let order = Guarded<[Int]>([])
        for n in 0..<5 { pool.run { order.withLock { $0.append(n) } } }
        let urgentRan = Guarded(false)
        pool.run(urgent: true) { urgentRan.withLock { $0 = true } }
        #expect(OutputFlusherTests.waitFor { urgentRan.withLock { $0 } }, "an urgent job does not wait")
        #expect(order.withLock { $0 }.isEmpty, "ordinary jobs wait for one of the \(maxThreads) threads")
        gate.withLock { $0 = true }
        #expect(OutputFlusherTests.waitFor { order.withLock { $0.count } == 5 })
        // One thread takes them one after another: in the order they came.
        if maxThreads == 1 { #expect(order.withLock { $0 } == [0, 1, 2, 3, 4]) }
        #expect(OutputFlusherTests.waitFor { pool.counts.busy == 0 })
        #expect(pool.counts.idle <= 2)
    }
}
