import Synchronization

/// A queue of bytes kept in memory up to a bound and in an anonymous
/// ``TempFile`` past it, as nginx keeps a body past `client_body_buffer_size`
/// and a response past its buffers: a request's body gathered before its
/// handler starts, a connection's output waiting for a slow reader. Bytes leave
/// in the order they came: memory first, then the file (nothing is added to
/// memory while the file holds any). The memory part is the chunks as they
/// came (a record's content is kept, not copied).
///
/// Past its own bound, a buffer may keep more in memory on loan from a
/// ``SharedMemory`` budget (the engine's, for gathered bodies), while the
/// budget lasts: a 1 MiB upload then costs no file write and read back on a
/// server with few of them in flight, and many at once still spill.
///
/// Not thread-safe: its owner's lock guards it.
struct SpillBuffer {
    /// Bytes kept in memory at most (beyond a loan); more go to the file.
    let memoryLimit: Int
    /// Where the file is made (on first use).
    let directory: String
    /// The shared budget it may borrow from, and what it has on loan (made on
    /// the first loan: most bodies never need one).
    private let shared: SharedMemory?
    private var loan: MemoryLoan?

    private var chunks: [[UInt8]] = []
    /// Chunks of `chunks` already taken, and bytes of the next one.
    private var chunkHead = 0
    private var byteHead = 0
    private var memoryCount = 0
    private var file: TempFile?
    private var fileRead = 0
    private var fileWritten = 0

    init(memoryLimit: Int, directory: String, shared: SharedMemory? = nil) {
        self.memoryLimit = memoryLimit
        self.directory = directory
        self.shared = shared
    }

    /// Bytes queued.
    var count: Int { memoryCount + fileWritten - fileRead }
    var isEmpty: Bool { count == 0 }
    /// Bytes queued in the file.
    var spilledCount: Int { fileWritten - fileRead }

    /// Queues `bytes` at the end: kept as they are in memory within the bound,
    /// else written to the file; throws when the file cannot be made or
    /// written (a full disk): nothing of `bytes` is queued then.
    mutating func append(_ bytes: [UInt8]) throws(SystemError) {
        guard !bytes.isEmpty else { return }
        if fitsInMemory(bytes.count) {
            keep(bytes)
            return
        }
        try bytes.withUnsafeBytes { b in Result { () throws(SystemError) in try spill(b) } }.get()
    }

    /// Queues a copy of `bytes` at the end (``append(_:)`` for bytes not in an array).
    mutating func append(_ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        guard !bytes.isEmpty else { return }
        if fitsInMemory(bytes.count) {
            keep(Array(bytes))
            return
        }
        try spill(bytes)
    }

    private mutating func fitsInMemory(_ count: Int) -> Bool {
        guard spilledCount == 0 else { return false }
        let total = memoryCount + count
        if total <= memoryLimit { return true }
        guard let shared else { return false }
        if loan == nil { loan = MemoryLoan(shared) }
        return loan!.cover(total - memoryLimit)
    }

    private mutating func keep(_ bytes: [UInt8]) {
        if chunkHead > 0 && chunkHead == chunks.count {
            chunks.removeAll(keepingCapacity: true)
            chunkHead = 0
        } else if chunkHead >= 64 {
            chunks.removeFirst(chunkHead)
            chunkHead = 0
        }
        chunks.append(bytes)
        memoryCount += bytes.count
    }

    private mutating func spill(_ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        if file == nil { file = try TempFile(in: directory) }
        try file!.write(bytes, at: fileWritten)
        fileWritten += bytes.count
    }

    /// Calls `body` with bytes from the front — the rest of the first chunk in
    /// memory, else up to `staging.count` bytes read from the file — and drops
    /// as many as it returns. Returns that count (0: nothing queued).
    mutating func withFront(
        staging: inout [UInt8], _ body: (UnsafeRawBufferPointer) -> Int
    ) throws(SystemError) -> Int {
        if memoryCount > 0 {
            let taken = chunks[chunkHead].withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[byteHead...])) }
            dropFromMemory(taken)
            return taken
        }
        guard spilledCount > 0, let file else { return 0 }
        let wanted = min(staging.count, spilledCount)
        let offset = fileRead
        let read = try staging.withUnsafeMutableBytes { b in
            Result { () throws(SystemError) -> Int in
                try file.read(into: UnsafeMutableRawBufferPointer(rebasing: b[..<wanted]), at: offset)
            }
        }.get()
        guard read > 0 else { throw SystemError("pread", code: 5 /* EIO: the file is shorter than written */) }
        let taken = staging.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[..<read])) }
        dropFromFile(taken)
        return taken
    }

    /// Moves up to `buffer.count` bytes from the front into `buffer`: the count
    /// moved (0: nothing queued).
    mutating func take(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        if memoryCount > 0 {
            let (head, chunk) = (byteHead, chunkHead)
            let n = min(buffer.count, chunks[chunk].count - head)
            chunks[chunk].withUnsafeBytes {
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[head..<head + n]))
            }
            dropFromMemory(n)
            return n
        }
        guard spilledCount > 0, let file else { return 0 }
        let n = try file.read(
            into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<min(buffer.count, spilledCount)]), at: fileRead)
        guard n > 0 else { throw SystemError("pread", code: 5) }
        dropFromFile(n)
        return n
    }

    /// ``append(_:)``, its failure as a value (nil: queued).
    mutating func appendResult(_ bytes: [UInt8]) -> SystemError? {
        do {
            try append(bytes)
            return nil
        } catch {
            return error
        }
    }

    /// ``take(into:)`` as a result value.
    mutating func takeResult(into buffer: UnsafeMutableRawBufferPointer) -> Result<Int, SystemError> {
        do {
            return .success(try take(into: buffer))
        } catch {
            return .failure(error)
        }
    }

    /// Drops `n` bytes of the first chunk in memory.
    private mutating func dropFromMemory(_ n: Int) {
        byteHead += n
        memoryCount -= n
        loan?.cover(memoryCount - memoryLimit)
        if byteHead == chunks[chunkHead].count {
            chunks[chunkHead] = []
            chunkHead += 1
            byteHead = 0
        }
    }

    /// Drops `n` bytes from the front of the file's part.
    private mutating func dropFromFile(_ n: Int) {
        fileRead += n
        if fileRead == fileWritten {
            // Caught up: the file is written from its start again.
            file?.empty()
            fileRead = 0
            fileWritten = 0
        }
    }

    /// Drops everything queued, and the file.
    mutating func removeAll() {
        chunks = []
        chunkHead = 0
        byteHead = 0
        memoryCount = 0
        loan?.cover(0)
        file = nil
        fileRead = 0
        fileWritten = 0
    }
}

/// A budget of memory shared by many ``SpillBuffer``s (the engine's gathered
/// bodies: ``RequestLimits/sharedBodyMemory``); any thread.
final class SharedMemory: Sendable {
    private let available: Atomic<Int>

    init(bytes: Int) { available = Atomic(bytes) }

    /// Takes `count` bytes if the budget has them.
    func take(_ count: Int) -> Bool {
        var current = available.load(ordering: .relaxed)
        while current >= count {
            let (exchanged, original) = available.compareExchange(
                expected: current, desired: current - count, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func give(_ count: Int) { available.add(count, ordering: .relaxed) }

    /// Bytes left (for tests).
    var left: Int { available.load(ordering: .relaxed) }
}

/// One buffer's loan from a ``SharedMemory``: given back as the buffer drains,
/// and all of it when the buffer is gone. Guarded like its buffer (copies of a
/// buffer share it; one of them is used at a time).
private final class MemoryLoan: @unchecked Sendable {
    private let shared: SharedMemory
    private var borrowed = 0

    init(_ shared: SharedMemory) { self.shared = shared }

    deinit { shared.give(borrowed) }

    /// Makes the loan `needed` bytes (at least 0): borrows the difference (false
    /// if the budget lacks it) or gives the excess back.
    @discardableResult
    func cover(_ needed: Int) -> Bool {
        let needed = max(0, needed)
        if needed > borrowed {
            guard shared.take(needed - borrowed) else { return false }
        } else if needed < borrowed {
            shared.give(borrowed - needed)
        }
        borrowed = needed
        return true
    }
}
