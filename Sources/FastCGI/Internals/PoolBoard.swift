import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The pool's table in shared memory: the master writes who its workers are
/// (pid, generation, start time, readiness, memory) and the pool's counters;
/// each worker publishes its own slot's figures and a heartbeat every second
/// (``PoolReporter``). Any worker's status page then shows the whole pool, and
/// the master sees a worker that stopped answering. The memory is a file that
/// exists only as open descriptors (made and unlinked at once), mapped by the
/// master and by each worker, which inherits it as fd 4. Every field is an
/// `Atomic<Int>`, so readers in other processes see whole values.
///
/// The pool's counters only grow: when a worker has exited, the master moves
/// its slot's counters into the board's retired totals (``retire(_:)``), under
/// a sequence number that ``totals`` reads around, so no reader sees the counts
/// twice or not at all.
final class PoolBoard: Sendable {
    enum Header: Int, CaseIterable {
        case generation, crashes, recycled, reloads, hung, startTime
        /// Odd while the master moves a slot's counters to the retired totals.
        case sequence
    }

    /// What a worker counts, published to its slot and kept when it exits.
    enum Counter: Int, CaseIterable {
        case requests, accepted, limitHits, refused, aborted, slow, timedOut, stalled, sendTimeouts, getValues
    }

    enum Field: Int, CaseIterable {
        case pid, generation, startTime, ready, residentBytes
        /// CLOCK_MONOTONIC (shared by every process) in milliseconds, when the
        /// worker last published; 0 before its first.
        case heartbeat
        /// Gauges the worker publishes with its heartbeat.
        case openConnections, inFlight, busyThreads, idleThreads, maxInFlight
    }

    /// What a slot holds, read at one moment.
    struct Worker: Hashable, Sendable {
        var pid: Int
        var generation: Int
        var startTime: Int
        var ready: Bool
        var residentBytes: Int
        /// Milliseconds since the worker last published (nil: not yet).
        var silentFor: Int?
        var requests: Int
    }

    /// The descriptor workers inherit the board through.
    static let workerFD: Int32 = 4

    let capacity: Int
    let descriptor: FileDescriptor
    nonisolated(unsafe) private let base: UnsafeMutablePointer<Atomic<Int>>
    private let count: Int

    /// A new, zeroed board for `capacity` workers (the master's).
    static func create(capacity: Int) throws(SystemError) -> PoolBoard {
        var template = Array("/tmp/swift-fcgi-pool-XXXXXX".utf8CString)
        let made = mkstemp(&template)
        guard made >= 0 else { throw SystemError("mkstemp") }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        // Above the descriptors a worker's fds 0, 3 and 4 are copied from, so the
        // copies at spawn cannot overwrite it.
        let raw = fcntl(made, F_DUPFD_CLOEXEC, 10)
        Glibc.close(made)
        guard raw >= 0 else { throw SystemError("fcntl(F_DUPFD_CLOEXEC)") }
        let descriptor = FileDescriptor(adopting: raw)
        guard ftruncate(raw, off_t(byteCount(capacity))) == 0 else { throw SystemError("ftruncate") }
        return try PoolBoard(descriptor: descriptor, capacity: capacity)
    }

    /// The board a worker inherited as `descriptor`.
    init(descriptor: FileDescriptor, capacity: Int) throws(SystemError) {
        self.descriptor = descriptor
        self.capacity = capacity
        count = Self.cellCount(capacity)
        let mapped = mmap(nil, Self.byteCount(capacity), PROT_READ | PROT_WRITE, MAP_SHARED, descriptor.raw, 0)
        guard let mapped, mapped != MAP_FAILED else { throw SystemError("mmap") }
        // Zero bytes are valid Atomic<Int>s of value 0 (an Atomic<Int> is laid out as an Int).
        base = mapped.bindMemory(to: Atomic<Int>.self, capacity: count)
    }

    deinit { munmap(UnsafeMutableRawPointer(base), Self.byteCount(capacity)) }

    private static let slotWidth = Field.allCases.count + Counter.allCases.count
    private static let slotsStart = Header.allCases.count + Counter.allCases.count

    private static func cellCount(_ capacity: Int) -> Int { slotsStart + capacity * slotWidth }

    private static func byteCount(_ capacity: Int) -> Int { cellCount(capacity) * MemoryLayout<Int>.stride }

    private func cell(_ slot: Int, _ index: Int) -> UnsafeMutablePointer<Atomic<Int>> {
        precondition((0..<capacity).contains(slot))
        return base + Self.slotsStart + slot * Self.slotWidth + index
    }

    subscript(header: Header) -> Int {
        get { base[header.rawValue].load(ordering: .relaxed) }
        set { base[header.rawValue].store(newValue, ordering: .relaxed) }
    }

    subscript(slot: Int, field: Field) -> Int {
        get { cell(slot, field.rawValue).pointee.load(ordering: .relaxed) }
        set { cell(slot, field.rawValue).pointee.store(newValue, ordering: .relaxed) }
    }

    /// A slot's counter, as its worker last published it.
    subscript(slot: Int, counter: Counter) -> Int {
        get { cell(slot, Field.allCases.count + counter.rawValue).pointee.load(ordering: .sequentiallyConsistent) }
        set { cell(slot, Field.allCases.count + counter.rawValue).pointee.store(newValue, ordering: .sequentiallyConsistent) }
    }

    /// The counts of the workers that have exited.
    private func retired(_ counter: Counter) -> UnsafeMutablePointer<Atomic<Int>> {
        base + Header.allCases.count + counter.rawValue
    }

    private var sequence: UnsafeMutablePointer<Atomic<Int>> { base + Header.sequence.rawValue }

    /// Empties `slot` for a new worker.
    func clear(_ slot: Int) {
        for field in Field.allCases { self[slot, field] = 0 }
        for counter in Counter.allCases { self[slot, counter] = 0 }
    }

    /// Frees the slot of a worker that has exited (the master, after
    /// `waitpid`): its counts join the retired totals, so the pool's counters
    /// never go back.
    func retire(_ slot: Int) {
        sequence.pointee.add(1, ordering: .sequentiallyConsistent)
        for counter in Counter.allCases {
            retired(counter).pointee.add(self[slot, counter], ordering: .sequentiallyConsistent)
            self[slot, counter] = 0
        }
        self[slot, .pid] = 0
        sequence.pointee.add(1, ordering: .sequentiallyConsistent)
    }

    /// The pool's counters: the retired totals and every slot's, read at one
    /// moment (again if the master retired a slot meanwhile).
    var totals: [Counter: Int] {
        while true {
            let before = sequence.pointee.load(ordering: .sequentiallyConsistent)
            if before % 2 == 1 {
                sched_yield()
                continue
            }
            var sums: [Counter: Int] = [:]
            for counter in Counter.allCases {
                var sum = retired(counter).pointee.load(ordering: .sequentiallyConsistent)
                for slot in 0..<capacity where self[slot, .pid] != 0 { sum += self[slot, counter] }
                sums[counter] = sum
            }
            if sequence.pointee.load(ordering: .sequentiallyConsistent) == before { return sums }
        }
    }

    /// The sum of a gauge over the live workers.
    func sum(_ field: Field) -> Int {
        (0..<capacity).reduce(0) { $0 + (self[$1, .pid] != 0 ? self[$1, field] : 0) }
    }

    /// The highest value of a gauge among the live workers.
    func highest(_ field: Field) -> Int {
        (0..<capacity).reduce(0) { self[$1, .pid] != 0 ? max($0, self[$1, field]) : $0 }
    }

    /// A slot no worker holds, nil if all are taken.
    func freeSlot() -> Int? { (0..<capacity).first { self[$0, .pid] == 0 } }

    /// Every slot a worker holds, in slot order.
    var workers: [Worker] {
        let now = MonotonicClock.coarseMilliseconds()
        return (0..<capacity).compactMap { slot in
            let pid = self[slot, .pid]
            guard pid != 0 else { return nil }
            let heartbeat = self[slot, .heartbeat]
            return Worker(
                pid: pid, generation: self[slot, .generation], startTime: self[slot, .startTime],
                ready: self[slot, .ready] != 0, residentBytes: self[slot, .residentBytes],
                silentFor: heartbeat == 0 ? nil : max(0, now - heartbeat), requests: self[slot, .requests])
        }
    }
}
