/// A queue of bytes kept in memory up to a bound and in an anonymous
/// ``TempFile`` past it, as nginx keeps a body past `client_body_buffer_size`
/// and a response past its buffers: a request's body gathered before its
/// handler starts, a connection's output waiting for a slow reader. Bytes leave
/// in the order they came: memory first, then the file (nothing is added to
/// memory while the file holds any).
///
/// Not thread-safe: its owner's lock guards it.
struct SpillBuffer {
    /// Bytes kept in memory at most; more go to the file.
    let memoryLimit: Int
    /// Where the file is made (on first use).
    let directory: String

    private var memory: [UInt8] = []
    /// Bytes of `memory` already taken.
    private var head = 0
    private var file: TempFile?
    private var fileRead = 0
    private var fileWritten = 0

    init(memoryLimit: Int, directory: String) {
        self.memoryLimit = memoryLimit
        self.directory = directory
    }

    /// Bytes queued.
    var count: Int { memory.count - head + fileWritten - fileRead }
    var isEmpty: Bool { count == 0 }
    /// Bytes queued in the file.
    var spilledCount: Int { fileWritten - fileRead }

    /// Queues `bytes` at the end; throws when the file cannot be made or written
    /// (a full disk): nothing of `bytes` is queued then.
    mutating func append(_ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        guard !bytes.isEmpty else { return }
        if spilledCount == 0 && memory.count - head + bytes.count <= memoryLimit {
            if head > 0 && memory.count + bytes.count > memoryLimit {
                memory.removeFirst(head)
                head = 0
            }
            memory.append(contentsOf: bytes)
            return
        }
        if file == nil { file = try TempFile(in: directory) }
        try file!.write(bytes, at: fileWritten)
        fileWritten += bytes.count
    }

    /// Calls `body` with bytes from the front — what memory holds, else up to
    /// `staging.count` bytes read from the file — and drops as many as it returns.
    /// Returns that count (0: nothing queued).
    mutating func withFront(
        staging: inout [UInt8], _ body: (UnsafeRawBufferPointer) -> Int
    ) throws(SystemError) -> Int {
        if head < memory.count {
            let taken = memory.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[head...])) }
            drop(taken)
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
        drop(taken)
        return taken
    }

    /// Moves up to `buffer.count` bytes from the front into `buffer`: the count
    /// moved (0: nothing queued).
    mutating func take(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        if head < memory.count {
            let n = min(buffer.count, memory.count - head)
            memory.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[head..<head + n])) }
            drop(n)
            return n
        }
        guard spilledCount > 0, let file else { return 0 }
        let n = try file.read(
            into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<min(buffer.count, spilledCount)]), at: fileRead)
        guard n > 0 else { throw SystemError("pread", code: 5) }
        drop(n)
        return n
    }

    /// ``append(_:)``, its failure as a value (nil: queued).
    mutating func appendResult(_ bytes: [UInt8]) -> SystemError? {
        do {
            try bytes.withUnsafeBytes { b in
                Result { () throws(SystemError) in try append(b) }
            }.get()
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

    /// Drops `n` bytes from the front (at most what memory, else the file, holds
    /// next to it: as ``withFront(staging:_:)`` offered them).
    private mutating func drop(_ n: Int) {
        if head < memory.count {
            head += n
            if head == memory.count {
                memory.removeAll(keepingCapacity: true)
                head = 0
            }
            return
        }
        fileRead += n
        if fileRead == fileWritten {
            // Caught up: the file's space goes back, the file is kept for reuse.
            file?.empty()
            fileRead = 0
            fileWritten = 0
        }
    }

    /// Drops everything queued, and the file.
    mutating func removeAll() {
        memory = []
        head = 0
        file = nil
        fileRead = 0
        fileWritten = 0
    }
}
