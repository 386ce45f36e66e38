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
///
/// Both ends are ``FileDescriptor``s owned here and closed when the worker lets go
/// of the pipe; libfcgi's `FCGX_Request` only borrows the read end
/// (``LibFCGIRequest`` keeps it alive and never lets libfcgi close it).
final class InputPipe: Sendable {
    /// libfcgi's end.
    let reader: FileDescriptor
    /// The firewall's end.
    private let writer: FileDescriptor

    init() throws(ServerError) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw ServerError.errno("pipe") }
        // (pipe2 with O_CLOEXEC needs _GNU_SOURCE, which Glibc's module leaves out.)
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        reader = FileDescriptor(adopting: fds[0])
        writer = FileDescriptor(adopting: fds[1])
        _ = fcntl(writer.raw, F_SETFL, O_NONBLOCK)
        // 256 KiB instead of Linux's 64 KiB: a large body crosses in a quarter of
        // the hand-offs between the connection's thread and the worker's. Pages are
        // only taken while bytes wait in it; where the limit is lower, the default stays.
        _ = fcntl(writer.raw, Self.setPipeSize, Self.capacity)
    }

    /// The pipe's buffer size asked for.
    private static let capacity: Int32 = 256 << 10
    /// `F_SETPIPE_SZ` (Linux; Glibc's module leaves it out: it needs `_GNU_SOURCE`).
    private static let setPipeSize: Int32 = 1031

    /// Writes all of `bytes`, waiting for the reader when the pipe is full; false
    /// once the pipe is closed.
    @discardableResult
    func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            switch writeNow(UnsafeRawBufferPointer(rebasing: bytes[offset...])) {
            case .success(let n): offset += n
            case .failure(let error) where error.wouldBlock:
                var ready = pollfd(fd: writer.raw, events: Int16(POLLOUT), revents: 0)
                _ = try? SystemCall.retrying("poll") { Int(poll(&ready, 1, -1)) }
            case .failure: return false
            }
        }
        return true
    }

    /// Writes what fits now: the count written (short when the pipe filled up),
    /// or why nothing could be (`wouldBlock` when it is full).
    func writeNow(_ bytes: UnsafeRawBufferPointer) -> Result<Int, SystemError> {
        var offset = 0
        while offset < bytes.count {
            do {
                offset += try SystemCall.retrying("write(pipe)") {
                    Glibc.write(writer.raw, bytes.baseAddress! + offset, bytes.count - offset)
                }
            } catch {
                return offset > 0 ? .success(offset) : .failure(error)
            }
        }
        return .success(offset)
    }

    /// Ends the stream for the reader (its reads fail: end of file) without
    /// closing the writer's descriptor, which another thread may be using: the
    /// write end's number is pointed at `/dev/null` and stays this pipe's until it
    /// is released.
    func close() {
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        guard null >= 0 else { return }
        _ = dup2(null, writer.raw)
        _ = Glibc.close(null)
    }
}
