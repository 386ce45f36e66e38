#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The pipe a libfcgi worker reads its canonical records from (its
/// `FCGX_Request`'s descriptor). A pipe rather than a socketpair: libfcgi only
/// reads from it (its output is taken over, see ``LibFCGIRequest``), and a pipe
/// costs less than half as much per write and read. The write end is
/// non-blocking, so the writer can choose between waiting for room
/// (``write(_:)``) and not waiting at all (``writeNow(_:)``).
struct InputPipe: Sendable {
    /// libfcgi's end.
    let readFD: Int32
    /// The firewall's end.
    private let writeFD: Int32

    init() throws(ServerError) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw ServerError.errno("pipe") }
        readFD = fds[0]
        writeFD = fds[1]
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(writeFD, F_SETFL, O_NONBLOCK)
        // 256 KiB instead of Linux's 64 KiB: a large body crosses in a quarter of
        // the hand-offs between the connection's thread and the worker's. Pages are
        // only taken while bytes wait in it; where the limit is lower, the default stays.
        _ = fcntl(writeFD, Self.setPipeSize, Self.capacity)
    }

    /// The pipe's buffer size asked for.
    private static let capacity: Int32 = 256 << 10
    /// `F_SETPIPE_SZ` (Linux; Glibc's module leaves it out: it needs `_GNU_SOURCE`).
    private static let setPipeSize: Int32 = 1031

    /// Writes all of `bytes`, waiting for the reader when the pipe is full; false
    /// once the pipe is closed.
    @discardableResult
    func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = writeNow(bytes)
        while offset < bytes.count {
            guard errno == EAGAIN else { return false }
            var ready = pollfd(fd: writeFD, events: Int16(POLLOUT), revents: 0)
            _ = poll(&ready, 1, -1)
            offset += writeNow(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
        }
        return true
    }

    /// Writes what fits now; returns the number of bytes written (`errno` says why
    /// it stopped short).
    func writeNow(_ bytes: UnsafeRawBufferPointer) -> Int {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(writeFD, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            offset += n
        }
        return offset
    }

    /// Ends the stream for the reader (its reads fail: end of file) without
    /// closing the writer's descriptor, which another thread may be using: the
    /// write end is replaced by `/dev/null`.
    func close() {
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        guard null >= 0 else { return }
        _ = dup2(null, writeFD)
        _ = Glibc.close(null)
    }
}
