#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A file descriptor with exactly one owner: the object itself. It is closed once,
/// in `deinit`, when the last reference goes, so after every thread that could
/// touch it is done with it: no thread can read, write or signal a number that
/// was closed and handed out again to another socket. (Before this type, a
/// connection closed its wake-up pipe while a request thread could still write to
/// it, and the byte landed on the next client's connection.)
///
/// To end a socket's traffic early, ``shutdown(_:)``: the number stays reserved
/// until the owner lets go. The raw number is for the system-call wrappers in
/// `Internals/` only.
final class FileDescriptor: Sendable, CustomStringConvertible {
    /// The number, valid for as long as this object lives.
    let raw: Int32

    /// Takes ownership of `raw`, a descriptor made close-on-exec (`SOCK_CLOEXEC`,
    /// `EFD_CLOEXEC`, …) so that processes the app starts do not inherit it.
    init(adopting raw: Int32) {
        self.raw = raw
    }

    deinit {
        // Not retried on EINTR: on Linux the number is released either way.
        _ = Glibc.close(raw)
    }

    var description: String { "fd \(raw)" }

    /// Which directions ``shutdown(_:)`` ends.
    enum Direction {
        case read, readWrite
        fileprivate var how: Int32 { self == .read ? Int32(SHUT_RD) : Int32(SHUT_RDWR) }
    }

    /// Ends traffic on a socket in `direction` (a blocked read returns 0); the
    /// descriptor stays open until its owner lets go.
    func shutdown(_ direction: Direction) {
        _ = Glibc.shutdown(raw, direction.how)
    }

    /// Reads into `buffer` (blocking as the descriptor does): the count read, 0 at
    /// end of stream.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        try SystemCall.retrying("read") { Glibc.read(raw, buffer.baseAddress, buffer.count) }
    }

    /// ``read(into:)`` (or, with `waiting` false, ``receiveNow(into:)``) as a
    /// result value: a failed read is an event to act on.
    func readResult(into buffer: UnsafeMutableRawBufferPointer, waiting: Bool = true) -> Result<Int, SystemError> {
        do {
            return .success(waiting ? try read(into: buffer) : try receiveNow(into: buffer))
        } catch {
            return .failure(error)
        }
    }

    /// Reads what is there now without waiting (`MSG_DONTWAIT`): the count read, 0
    /// at end of stream; `EAGAIN` when nothing is there.
    func receiveNow(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        try SystemCall.retrying("recv") { recv(raw, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT)) }
    }

    /// Sends what the socket takes now without waiting (`MSG_DONTWAIT`, no
    /// SIGPIPE): the count sent; `EAGAIN` when its buffer is full.
    /// With `more`, TCP holds a short tail back (`MSG_MORE`) for a shutdown to
    /// carry it with the FIN in one segment.
    func sendNow(_ bytes: UnsafeRawBufferPointer, more: Bool = false) -> Result<Int, SystemError> {
        let flags = Int32(MSG_NOSIGNAL | MSG_DONTWAIT) | (more ? Int32(MSG_MORE) : 0)
        do {
            return .success(
                try SystemCall.retrying("send") {
                    send(raw, bytes.baseAddress, bytes.count, flags)
                })
        } catch {
            return .failure(error)
        }
    }

    /// Opens the file at `path` for reading.
    static func openForReading(_ path: String) throws(SystemError) -> FileDescriptor {
        let raw = open(path, O_RDONLY | O_CLOEXEC)
        guard raw >= 0 else { throw SystemError("open \(path)") }
        return FileDescriptor(adopting: raw)
    }

    /// The size of the regular file open here; `EISDIR`-like failure otherwise.
    func regularFileSize() throws(SystemError) -> Int {
        var info = stat()
        guard fstat(raw, &info) == 0 else { throw SystemError("fstat") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw SystemError("fstat", code: EISDIR) }
        return Int(info.st_size)
    }

    /// Up to `max` bytes read (blocking); empty at the end.
    func readChunk(max: Int) throws(SystemError) -> [UInt8] {
        var failure: SystemError?
        let bytes = [UInt8](unsafeUninitializedCapacity: max) { buffer, count in
            do throws(SystemError) {
                count = try read(into: UnsafeMutableRawBufferPointer(buffer))
            } catch {
                failure = error
                count = 0
            }
        }
        if let failure { throw failure }
        return bytes
    }

    /// Opens (creating it, mode 0640) the file at `path` for appending: each
    /// write lands whole at the end, whatever other processes append.
    static func openForAppending(_ path: String) throws(SystemError) -> FileDescriptor {
        let raw = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard raw >= 0 else { throw SystemError("open \(path)") }
        return FileDescriptor(adopting: raw)
    }

    /// A connected pair of unix stream sockets (close-on-exec), for tests of the
    /// types that own a connection's socket; with `sendBuffer`, the first one's
    /// send buffer is set that small (the kernel doubles it, and has a floor).
    static func socketPair(sendBuffer: Int32? = nil) throws(SystemError) -> (FileDescriptor, FileDescriptor) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw SystemError("socketpair")
        }
        let pair = (FileDescriptor(adopting: fds[0]), FileDescriptor(adopting: fds[1]))
        if var size = sendBuffer {
            _ = setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        return pair
    }

    /// Writes all of `bytes` (a pipe or a file: `write`, not `send`).
    func write(_ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        try SystemCall.writeAll(raw, bytes, call: "write")
    }

    /// Waits until the descriptors are readable (or `timeoutMilliseconds` pass; -1
    /// waits for ever). Returns which were; `nil` entries are skipped.
    static func waitReadable(_ descriptors: [FileDescriptor?], timeoutMilliseconds: Int32) throws(SystemError) -> [Bool] {
        var fds = descriptors.map { pollfd(fd: $0?.raw ?? -1, events: Int16(POLLIN), revents: 0) }
        _ = try SystemCall.retrying("poll") { Int(poll(&fds, nfds_t(fds.count), timeoutMilliseconds)) }
        return fds.map { $0.revents != 0 }
    }
}

/// A system call that failed: what was called and `errno`, read once, right after.
struct SystemError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The call, e.g. `read`.
    var call: String
    /// `errno` at the failure.
    var code: Int32

    /// The error for `call` with the current `errno`.
    init(_ call: String, code: Int32 = errno) {
        self.call = call
        self.code = code
    }

    /// The call would have blocked (`EAGAIN`), or a receive timed out.
    var wouldBlock: Bool { code == EAGAIN || code == EWOULDBLOCK }

    var description: String { "\(call): \(String(cString: strerror(code))) (errno \(code))" }
}

/// The one door for system calls: `EINTR` retried, `errno` read once.
enum SystemCall {
    /// Runs `body` until it does not fail with `EINTR`; a negative result becomes
    /// a ``SystemError`` for `call`.
    static func retrying(_ call: String, _ body: () -> Int) throws(SystemError) -> Int {
        while true {
            let result = body()
            if result >= 0 { return result }
            let code = errno
            if code != EINTR { throw SystemError(call, code: code) }
        }
    }

    /// `write` until all of `bytes` went to descriptor `raw` (one this code does
    /// not own, such as stdout, or a ``FileDescriptor``'s).
    static func writeAll(_ raw: Int32, _ bytes: UnsafeRawBufferPointer, call: String) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            offset += try retrying(call) { Glibc.write(raw, bytes.baseAddress! + offset, bytes.count - offset) }
        }
    }
}
