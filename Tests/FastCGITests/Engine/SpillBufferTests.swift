import Foundation
import Testing

@testable import FastCGI

/// The byte queue behind gathered bodies and queued output: memory up to its
/// bound, an unnamed file past it, bytes out in the order they came in.
@Suite("SpillBuffer: memory, then a file, in order")
struct SpillBufferTests {
    static func bytes(_ count: Int, from start: Int) -> [UInt8] {
        (start..<start + count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
    }

    /// Takes everything, `chunk` bytes at a time.
    static func drain(_ buffer: inout SpillBuffer, chunk: Int = 1000) throws -> [UInt8] {
        var out: [UInt8] = []
        var piece = [UInt8](repeating: 0, count: chunk)
        while true {
            let n = try piece.withUnsafeMutableBytes { try buffer.take(into: $0) }
            if n == 0 { return out }
            out += piece[..<n]
        }
    }

    @Test("within the memory bound nothing touches the disk")
    func memoryOnly() throws {
        var buffer = SpillBuffer(memoryLimit: 100, directory: "/nonexistent")
        let input = Self.bytes(100, from: 0)
        try input.withUnsafeBytes { try buffer.append($0) }
        #expect(buffer.count == 100)
        #expect(buffer.spilledCount == 0)
        #expect(try Self.drain(&buffer, chunk: 7) == input)
        #expect(buffer.isEmpty)
    }

    @Test("past its own bound a buffer borrows shared memory while it lasts, and gives it back")
    func sharedMemory() throws {
        let shared = SharedMemory(bytes: 300)
        var first = SpillBuffer(memoryLimit: 100, directory: "/nonexistent", shared: shared)
        // 100 of its own and 300 borrowed: all in memory (no file can be made).
        for round in 0..<4 { try Self.bytes(100, from: round * 100).withUnsafeBytes { try first.append($0) } }
        #expect(first.spilledCount == 0)
        #expect(shared.left == 0)
        // A second buffer finds the budget spent: what is past its own bound
        // spills (an append is kept whole, in memory or in the file).
        var second = SpillBuffer(memoryLimit: 10, directory: NSTemporaryDirectory(), shared: shared)
        try Self.bytes(50, from: 7).withUnsafeBytes { try second.append($0) }
        #expect(second.spilledCount == 50)
        // As the first drains, the loan goes back; taking it all returns it all.
        var piece = [UInt8](repeating: 0, count: 150)
        _ = try piece.withUnsafeMutableBytes { try first.take(into: $0) }
        #expect(shared.left == 100)
        #expect(try Self.drain(&first) == Self.bytes(300, from: 100))
        #expect(shared.left == 300)
        // A buffer let go with a loan gives it back.
        do {
            var third = SpillBuffer(memoryLimit: 0, directory: "/nonexistent", shared: shared)
            try Self.bytes(200, from: 0).withUnsafeBytes { try third.append($0) }
            #expect(shared.left == 100)
        }
        #expect(shared.left == 300)
        #expect(try Self.drain(&second) == Self.bytes(50, from: 7))
    }

    @Test("one byte past the bound spills; order holds across memory and file, appends and takes interleaved")
    func spillsInOrder() throws {
        var buffer = SpillBuffer(memoryLimit: 64, directory: NSTemporaryDirectory())
        var expected: [UInt8] = []
        var got: [UInt8] = []
        var next = 0
        for round in 0..<50 {
            let piece = Self.bytes(round * 13 % 97 + 1, from: next)
            next += piece.count
            expected += piece
            try piece.withUnsafeBytes { try buffer.append($0) }
            if round % 3 == 0 {
                var out = [UInt8](repeating: 0, count: 40)
                let n = try out.withUnsafeMutableBytes { try buffer.take(into: $0) }
                got += out[..<n]
            }
        }
        #expect(buffer.spilledCount > 0)
        got += try Self.drain(&buffer)
        #expect(got == expected)
        #expect(buffer.count == 0)
        // Caught up: the file's space went back, and it is used again.
        try Self.bytes(200, from: 1).withUnsafeBytes { try buffer.append($0) }
        #expect(try Self.drain(&buffer) == Self.bytes(200, from: 1))
    }

    @Test("a file let go is reused by the next spill, which reads only its own bytes")
    func reusedFile() throws {
        let directory = NSTemporaryDirectory()
        do {
            var first = SpillBuffer(memoryLimit: 0, directory: directory)
            try Self.bytes(5000, from: 1).withUnsafeBytes { try first.append($0) }
            #expect(first.spilledCount == 5000)
        }
        var second = SpillBuffer(memoryLimit: 0, directory: directory)
        try Self.bytes(10, from: 99).withUnsafeBytes { try second.append($0) }
        #expect(try Self.drain(&second) == Self.bytes(10, from: 99))
        #expect(second.isEmpty)
    }

    @Test("withFront drops only what its body took, from memory and from the file")
    func partialFront() throws {
        var buffer = SpillBuffer(memoryLimit: 10, directory: NSTemporaryDirectory())
        let input = Self.bytes(100, from: 3)
        try input.withUnsafeBytes { try buffer.append($0) }
        var staging = [UInt8](repeating: 0, count: 16)
        var got: [UInt8] = []
        while !buffer.isEmpty {
            // Takes at most 3 bytes of what it is offered.
            _ = try buffer.withFront(staging: &staging) { front in
                let n = min(3, front.count)
                got += front[..<n]
                return n
            }
        }
        #expect(got == input)
    }

    @Test("a directory that cannot hold the file: the append past the bound fails, nothing of it queued")
    func unwritableDirectory() throws {
        var buffer = SpillBuffer(memoryLimit: 8, directory: "/nonexistent/swift-fcgi")
        try [UInt8]([1, 2, 3]).withUnsafeBytes { try buffer.append($0) }
        #expect(buffer.appendResult(Array(repeating: 9, count: 20)) != nil)
        #expect(buffer.count == 3)
        #expect(try Self.drain(&buffer) == [1, 2, 3])
    }
}

/// A connection's output (``Outbox``) on a real socketpair, with the clock
/// given: what the socket takes goes now, the rest waits in order; the
/// flusher's sends pick it up; a peer that takes nothing for the send timeout
/// ends the connection; a close asked for while output waits comes after it.
@Suite("Outbox: never blocks, sends in order, times out a silent peer")
struct OutboxTests {
    static func outbox(memory: Int = 4096) -> Outbox {
        Outbox(queued: SpillBuffer(memoryLimit: memory, directory: NSTemporaryDirectory()))
    }

    /// Reads what the peer has now (without waiting).
    static func readAvailable(_ fd: FileDescriptor) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let result = chunk.withUnsafeMutableBytes { fd.readResult(into: $0, waiting: false) }
            guard case .success(let n) = result, n > 0 else { return out }
            out += chunk[..<n]
        }
    }

    @Test("a write the socket takes leaves at once; a bigger one queues the rest, which the flush sends in order")
    func queuesAndFlushes() throws {
        let (ours, peer) = try FileDescriptor.socketPair(sendBuffer: 4096)
        var outbox = Self.outbox()
        let small = SpillBufferTests.bytes(100, from: 0)
        #expect(!small.withUnsafeBytes { outbox.send($0, on: ours) }, "nothing to watch")
        #expect(outbox.queued.isEmpty)
        // 2 MiB: far past a 4 KiB send buffer and the 4 KiB memory bound.
        let big = SpillBufferTests.bytes(2 << 20, from: 100)
        #expect(big.withUnsafeBytes { outbox.send($0, on: ours) }, "the flusher must watch it")
        #expect(outbox.queued.count > 0)
        #expect(outbox.queued.spilledCount > 0)
        // Queued behind: a later write is not sent ahead of it, and needs no new watch.
        let tail = SpillBufferTests.bytes(10, from: 7)
        #expect(!tail.withUnsafeBytes { outbox.send($0, on: ours) })
        // The connection closes meanwhile: it ends after the last byte, not before.
        outbox.closeWhenSent = true
        var received: [UInt8] = []
        var staging = [UInt8](repeating: 0, count: 8192)
        var rounds = 0
        while true {
            received += Self.readAvailable(peer)
            if outbox.flush(on: ours, staging: &staging, now: Double(rounds)) == .done { break }
            rounds += 1
            #expect(rounds < 100_000)
        }
        received += Self.readAvailable(peer)
        #expect(received == small + big + tail)
        #expect(outbox.side == .shutDown)
        var chunk = [UInt8](repeating: 0, count: 16)
        let end = chunk.withUnsafeMutableBytes { peer.readResult(into: $0, waiting: false) }
        #expect(end == .success(0))
        #expect(!outbox.watched)
        #expect(outbox.lastProgress > 0)
    }

    @Test("no progress for the send timeout ends it: queue dropped, peer sees the end; progress resets the clock")
    func sendTimeout() throws {
        let (ours, peer) = try FileDescriptor.socketPair(sendBuffer: 4096)
        var outbox = Self.outbox()
        _ = SpillBufferTests.bytes(1 << 20, from: 0).withUnsafeBytes { outbox.send($0, on: ours) }
        let start = outbox.lastProgress
        let belowTimeout = outbox.endIfTimedOut(on: ours, now: start + 59.9, timeout: 60)
        #expect(!belowTimeout, "just below the timeout")
        // The peer reads a little: progress.
        _ = Self.readAvailable(peer)
        var staging = [UInt8](repeating: 0, count: 8192)
        #expect(outbox.flush(on: ours, staging: &staging, now: start + 59.9) == .pending)
        let afterProgress = outbox.endIfTimedOut(on: ours, now: start + 100, timeout: 60)
        #expect(!afterProgress, "progress at 59.9 s")
        let wellPast = outbox.endIfTimedOut(on: ours, now: start + 120, timeout: 60)
        #expect(wellPast, "well past it")
        #expect(outbox.side == .failed)
        #expect(outbox.queued.isEmpty)
        // Later writes are refused; the peer reads what was sent, then the end.
        #expect(!SpillBufferTests.bytes(10, from: 0).withUnsafeBytes { outbox.send($0, on: ours) })
        var sawEnd = false
        for _ in 0..<100 {
            var chunk = [UInt8](repeating: 0, count: 65536)
            if case .success(0) = chunk.withUnsafeMutableBytes({ peer.readResult(into: $0, waiting: false) }) {
                sawEnd = true
                break
            }
        }
        #expect(sawEnd)
    }

    @Test("a peer that went away: the write fails, nothing is queued")
    func peerGone() throws {
        let ours = try FileDescriptor.socketPair().0  // the peer's end is closed at once
        var outbox = Self.outbox()
        let watch = SpillBufferTests.bytes(10, from: 0).withUnsafeBytes { outbox.send($0, on: ours) }
        #expect(!watch)
        #expect(outbox.side == .failed)
        #expect(outbox.queued.isEmpty)
    }
}
