import Testing

@testable import FastCGI

/// The input-timeout bookkeeping, driven with a hand-held clock.
@Suite("InputStalls: which requests' input stalled")
struct InputStallsTests {
    @Test("no timeout: nothing is tracked")
    func off() {
        var stalls = InputStalls(timeout: nil)
        stalls.started(1, filter: false, at: 0)
        #expect(!stalls.isActive)
        #expect(stalls.nextDeadline == nil)
        #expect(stalls.takeStalled(at: 1e9).isEmpty)
    }

    @Test("a request stalls `timeout` after its last input, not after its start")
    func lastInputCounts() {
        var stalls = InputStalls(timeout: 60)
        stalls.started(1, filter: false, at: 0)
        #expect(stalls.nextDeadline == 60)
        stalls.received(1, stdin: true, ended: false, at: 50)
        #expect(stalls.nextDeadline == 110)
        #expect(stalls.takeStalled(at: 109.9).isEmpty)
        #expect(stalls.takeStalled(at: 110) == [1])
        // Taken once: no longer tracked.
        #expect(stalls.nextDeadline == nil)
        #expect(stalls.takeStalled(at: 500).isEmpty)
    }

    @Test("the end of stdin ends the wait; a filter also waits for its data")
    func streamEnds() {
        var stalls = InputStalls(timeout: 10)
        stalls.started(1, filter: false, at: 0)
        stalls.started(2, filter: true, at: 0)
        stalls.received(1, stdin: true, ended: true, at: 1)
        stalls.received(2, stdin: true, ended: true, at: 1)
        #expect(stalls.nextDeadline == 11, "the filter still waits for FCGI_DATA")
        stalls.received(2, stdin: false, ended: false, at: 5)
        #expect(stalls.nextDeadline == 15)
        stalls.received(2, stdin: false, ended: true, at: 6)
        #expect(stalls.nextDeadline == nil)
    }

    @Test("the earliest deadline wins; a request that ended is forgotten")
    func several() {
        var stalls = InputStalls(timeout: 10)
        stalls.started(3, filter: false, at: 2)
        stalls.started(1, filter: false, at: 0)
        stalls.started(2, filter: false, at: 1)
        #expect(stalls.nextDeadline == 10)
        stalls.ended(1)
        #expect(stalls.nextDeadline == 11)
        stalls.received(7, stdin: true, ended: false, at: 3)  // unknown id: ignored
        #expect(stalls.takeStalled(at: 12.5) == [2, 3])
    }
}
