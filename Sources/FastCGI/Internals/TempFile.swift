private import CEpoll

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// An anonymous temporary file: made in a directory with `O_TMPFILE` (or made
/// and unlinked at once where the file system has no `O_TMPFILE`), so it has no
/// name and its space is freed when its descriptor closes. What a request's
/// body or a connection's output spills to past its memory bound.
///
/// Making and dropping a file costs the file system a transaction each, and
/// giving its pages back and taking them again a page-cache round trip: a
/// file let go is kept for the next spill instead (a few per directory, none
/// larger than ``keptSize`` — a bigger one is cut down first), and a reader that
/// caught up starts writing from the start again without cutting it. Its owner
/// is the `TempFile`; a kept one is owned by the spares list.
final class TempFile: @unchecked Sendable {
    private let descriptor: FileDescriptor
    private let directory: String
    /// The furthest byte ever written (what the file's pages hold).
    private var size = 0

    /// Files kept for reuse, by directory.
    private static let spares = Guarded<[String: [FileDescriptor]]>([:])
    /// Most files kept per directory.
    static let keptFiles = 16
    /// A file larger than this is cut down to nothing before it is kept.
    static let keptSize = 4 << 20

    /// Makes one in `directory` (or takes a kept one), readable and writable by
    /// this user only.
    init(in directory: String) throws(SystemError) {
        self.directory = directory
        if let spare = Self.spares.withLock({ $0[directory]?.popLast() }) {
            descriptor = spare
            return
        }
        var raw = swift_fcgi_open_tmpfile(directory)
        if raw < 0 {
            var template = Array("\(directory)/swift-fcgi-XXXXXX".utf8CString)
            raw = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            guard raw >= 0 else { throw SystemError("open(\(directory), O_TMPFILE)") }
            _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
            _ = fcntl(raw, F_SETFD, FD_CLOEXEC)
        }
        descriptor = FileDescriptor(adopting: raw)
    }

    deinit {
        if size > Self.keptSize { _ = ftruncate(descriptor.raw, 0) }
        let descriptor = descriptor
        let directory = directory
        Self.spares.withLock { spares in
            if spares[directory, default: []].count < Self.keptFiles { spares[directory, default: []].append(descriptor) }
        }
    }

    /// Writes all of `bytes` at `offset`.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            done += try SystemCall.retrying("pwrite") {
                pwrite(descriptor.raw, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            }
        }
        size = max(size, offset + done)
    }

    /// Reads up to `buffer.count` bytes at `offset`: the count read (0 past the end).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(SystemError) -> Int {
        try SystemCall.retrying("pread") { pread(descriptor.raw, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    /// The reader caught up with the writer: the next write starts at the
    /// beginning again; a file grown past ``keptSize`` gives its space back.
    func empty() {
        guard size > Self.keptSize else { return }
        _ = ftruncate(descriptor.raw, 0)
        size = 0
    }
}
