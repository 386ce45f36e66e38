import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The pool's table in shared memory: the master writes who its workers are
/// (pid, generation, start time, readiness, memory) and the pool's counters;
/// each worker adds to its own slot's request count. Any worker's status page
/// then shows the whole pool. The memory is a file that exists only as open
/// descriptors (made and unlinked at once), mapped by the master and by each
/// worker, which inherits it as fd 4. Every field is an `Atomic<Int>`, so
/// readers in other processes see whole values.
final class PoolBoard: Sendable {
    enum Header: Int, CaseIterable {
        case generation, crashes, recycled, reloads
    }

    enum Field: Int, CaseIterable {
        case pid, generation, startTime, ready, residentBytes, requests
    }

    /// What a slot holds, read at one moment.
    struct Worker: Hashable, Sendable {
        var pid: Int
        var generation: Int
        var startTime: Int
        var ready: Bool
        var residentBytes: Int
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
        count = Header.allCases.count + capacity * Field.allCases.count
        let mapped = mmap(nil, Self.byteCount(capacity), PROT_READ | PROT_WRITE, MAP_SHARED, descriptor.raw, 0)
        guard let mapped, mapped != MAP_FAILED else { throw SystemError("mmap") }
        // Zero bytes are valid Atomic<Int>s of value 0 (an Atomic<Int> is laid out as an Int).
        base = mapped.bindMemory(to: Atomic<Int>.self, capacity: count)
    }

    deinit { munmap(UnsafeMutableRawPointer(base), Self.byteCount(capacity)) }

    private static func byteCount(_ capacity: Int) -> Int {
        (Header.allCases.count + capacity * Field.allCases.count) * MemoryLayout<Int>.stride
    }

    private func cell(_ slot: Int, _ field: Field) -> UnsafeMutablePointer<Atomic<Int>> {
        precondition((0..<capacity).contains(slot))
        return base + Header.allCases.count + slot * Field.allCases.count + field.rawValue
    }

    subscript(header: Header) -> Int {
        get { base[header.rawValue].load(ordering: .relaxed) }
        set { base[header.rawValue].store(newValue, ordering: .relaxed) }
    }

    subscript(slot: Int, field: Field) -> Int {
        get { cell(slot, field).pointee.load(ordering: .relaxed) }
        set { cell(slot, field).pointee.store(newValue, ordering: .relaxed) }
    }

    /// Adds one to a slot's field (a worker counting its requests, from any thread).
    func increment(_ slot: Int, _ field: Field) {
        cell(slot, field).pointee.add(1, ordering: .relaxed)
    }

    /// A slot no worker holds, nil if all are taken.
    func freeSlot() -> Int? { (0..<capacity).first { self[$0, .pid] == 0 } }

    /// Every slot a worker holds, in slot order.
    var workers: [Worker] {
        (0..<capacity).compactMap { slot in
            let pid = self[slot, .pid]
            guard pid != 0 else { return nil }
            return Worker(
                pid: pid, generation: self[slot, .generation], startTime: self[slot, .startTime],
                ready: self[slot, .ready] != 0, residentBytes: self[slot, .residentBytes], requests: self[slot, .requests])
        }
    }
}
