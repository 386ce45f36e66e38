import Testing

@testable import FastCGI

/// The pool's shared table, in one process: slots, retirement, totals.
@Suite("PoolBoard: the pool's counters only grow")
struct PoolBoardTests {
    @Test("a retired slot's counts join the totals; a cleared slot starts from zero")
    func retire() throws {
        let board = try PoolBoard.create(capacity: 3)
        for (slot, pid) in [(0, 101), (1, 102)] {
            board.clear(slot)
            board[slot, .pid] = pid
        }
        board[0, .requests] = 40
        board[1, .requests] = 2
        board[0, .aborted] = 1
        #expect(board.totals[.requests] == 42 && board.totals[.aborted] == 1)
        board.retire(0)
        #expect(board[0, .pid] == 0 && board[0, .requests] == 0)
        #expect(board.totals[.requests] == 42 && board.totals[.aborted] == 1, "kept after the worker is gone")
        #expect(board.freeSlot() == 0)
        board.clear(0)
        board[0, .pid] = 103
        board[0, .requests] = 5
        #expect(board.totals[.requests] == 47)
        #expect(board.workers.map(\.pid) == [103, 102])
    }

    @Test("gauges: the sum and the highest over the live slots only")
    func gauges() throws {
        let board = try PoolBoard.create(capacity: 3)
        board[0, .pid] = 1
        board[0, .inFlight] = 3
        board[0, .maxInFlight] = 9
        board[1, .pid] = 2
        board[1, .inFlight] = 4
        board[1, .maxInFlight] = 5
        board[2, .inFlight] = 100  // no worker holds slot 2
        #expect(board.sum(.inFlight) == 7 && board.highest(.maxInFlight) == 9)
    }

    @Test("a heartbeat's age; none before the first")
    func heartbeat() throws {
        let board = try PoolBoard.create(capacity: 1)
        board[0, .pid] = 7
        #expect(board.workers.first?.silentFor == nil)
        board[0, .heartbeat] = MonotonicClock.coarseMilliseconds() - 2500
        #expect((board.workers.first?.silentFor ?? 0) >= 2500)
    }
}
