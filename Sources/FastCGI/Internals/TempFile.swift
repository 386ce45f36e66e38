private import CEpoll

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// An anonymous temporary file: made in a directory with `O_TMPFILE` (or made
/// and unlinked at once where the file system has no `O_TMPFILE`), so it has no
/// name and its space is freed when its one owner, this object, closes it. What
/// a request's body or a connection's output spills to past its memory bound.
final class TempFile: Sendable {
    private let descriptor: FileDescriptor

    /// Makes one in `directory`, readable and writable by this user only.
    init(in directory: String) throws(SystemError) {
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

    /// Writes all of `bytes` at `offset`.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            done += try SystemCall.retrying("pwrite") {
                pwrite(descriptor.raw, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            }
        }
    }

    /// Reads up to `buffer.count` bytes at `offset`: the count read (0 past the end).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(SystemError) -> Int {
        try SystemCall.retrying("pread") { pread(descriptor.raw, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    /// Gives the file's space back (its reader caught up with its writer).
    func empty() {
        _ = ftruncate(descriptor.raw, 0)
    }
}
