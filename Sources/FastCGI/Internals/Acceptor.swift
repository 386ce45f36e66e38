private import CEpoll
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Accepts connections on a listening socket, each ready to serve: close-on-exec,
/// a send timeout, a receive timeout, and `TCP_NODELAY` over TCP.
///
/// A new connection per request is the default behind nginx, so what accepting
/// costs counts per request: one `accept4` (close-on-exec set by it). Linux copies
/// a TCP listening socket's options into each connection it accepts (the timeouts
/// and `TCP_NODELAY`), so over TCP they are set once, on the listener; a unix
/// socket's connections do not inherit them and get theirs one by one. The copy
/// is made when the handshake completes, not at `accept`: as many connections as
/// were queued when the listener got its options (`TCP_INFO` tells) get theirs
/// one by one too.
///
/// Shared by the engine's acceptor threads (``accept()`` from any of them).
final class Acceptor: Sendable {
    let listenFD: Int32
    /// A send that makes no progress for this long fails: a peer that stops
    /// reading cannot hold a writer (and the write lock it holds) for ever.
    static let sendTimeout = 60.0
    /// How long a blocking read waits (then fails with `EAGAIN`).
    private let receiveTimeout: Double
    /// Whether accepted connections carry the options already.
    private let inherits: Bool
    /// Connections that may have been queued before the listener had the
    /// options: the next this many accepted get theirs one by one.
    private let early: Atomic<Int>

    /// Makes `accept` on the listening socket return `EAGAIN` instead of waiting:
    /// when several processes serve one socket (a process manager's workers,
    /// spawn-fcgi children), all wake for one connection and one gets it; a
    /// blocking accept would then hold the others deaf to a stop. Over TCP, sets
    /// the connections' options on the listener (the receive timeout too: with the
    /// listener non-blocking it never makes `accept` wait).
    init(listening listenFD: Int32, receiveTimeout: Double) {
        self.listenFD = listenFD
        self.receiveTimeout = receiveTimeout
        let flags = fcntl(listenFD, F_GETFL)
        if flags >= 0 { _ = fcntl(listenFD, F_SETFL, flags | O_NONBLOCK) }
        let family = Socket.localAddress(listenFD).map { Int32($0.ss_family) }
        let tcp = family == AF_INET || family == AF_INET6
        inherits = tcp && (try? Self.setOptions(listenFD, receiveTimeout: receiveTimeout, tcp: true)) != nil
        early = Atomic(inherits ? Self.queuedConnections(listenFD) ?? .max : 0)
    }

    /// How many connections wait in a TCP listener's accept queue (`TCP_INFO`
    /// reports it as `tcpi_unacked` for a listening socket, as `ss -l` shows).
    private static func queuedConnections(_ listenFD: Int32) -> Int? {
        var info = tcp_info()
        var length = socklen_t(MemoryLayout<tcp_info>.size)
        guard getsockopt(listenFD, Int32(IPPROTO_TCP), TCP_INFO, &info, &length) == 0 else { return nil }
        return Int(info.tcpi_unacked)
    }

    /// Accepts a connection: its descriptor, owned from here on, and the peer.
    func accept() throws(SystemError) -> (descriptor: FileDescriptor, peer: PeerAddress) {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd: Int
        do {
            fd = try SystemCall.retrying("accept4") {
                Int(swift_fcgi_accept4(listenFD, &storage, &length, Int32(SOCK_CLOEXEC.rawValue)))
            }
        } catch {
            // The queue is empty: every later connection is copied from the
            // listener as it is now.
            if error.wouldBlock { early.store(0, ordering: .relaxed) }
            throw error
        }
        let descriptor = FileDescriptor(adopting: Int32(fd))
        let peer = PeerAddress(storage)
        // (Two threads may both take the last early one: its options are then
        // set twice, no harm.)
        if !inherits || early.load(ordering: .relaxed) > 0 {
            if inherits { early.subtract(1, ordering: .relaxed) }
            var tcp = true
            if case .unix = peer { tcp = false }
            // Not fatal: the connection works without them, only less guarded.
            try? Self.setOptions(descriptor.raw, receiveTimeout: receiveTimeout, tcp: tcp)
        }
        return (descriptor, peer)
    }

    private static func setOptions(_ fd: Int32, receiveTimeout: Double, tcp: Bool) throws(SystemError) {
        try setTimeout(fd, SO_SNDTIMEO, seconds: sendTimeout)
        try setTimeout(fd, SO_RCVTIMEO, seconds: receiveTimeout)
        guard tcp else { return }
        var one: Int32 = 1
        guard setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw SystemError("setsockopt(TCP_NODELAY)")
        }
    }

    private static func setTimeout(_ fd: Int32, _ option: Int32, seconds: Double) throws(SystemError) {
        var limit = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1e6))
        guard setsockopt(fd, SOL_SOCKET, option, &limit, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
            throw SystemError("setsockopt(\(option == SO_SNDTIMEO ? "SO_SNDTIMEO" : "SO_RCVTIMEO"))")
        }
    }
}

extension PeerAddress {
    /// The peer of an accepted connection, from the address `accept` filled in.
    init(_ storage: sockaddr_storage) {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            self = withUnsafeBytes(of: &storage) { raw in
                let addr = raw.load(as: sockaddr_in.self)
                return .ipv4(withUnsafeBytes(of: addr.sin_addr) { Array($0) })
            }
        case AF_INET6:
            self = withUnsafeBytes(of: &storage) { raw in
                let addr = raw.load(as: sockaddr_in6.self)
                let bytes = withUnsafeBytes(of: addr.sin6_addr) { Array($0) }
                // An IPv4-mapped address (::ffff:a.b.c.d) is matched as IPv4.
                if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
                    return .ipv4(Array(bytes[12...]))
                }
                return .ipv6(bytes)
            }
        default:
            self = .unix
        }
    }
}

/// What an accepted connection's socket is set to, read back from the kernel
/// (for the tests, and for anyone checking what the ``Acceptor`` did).
struct ConnectionOptions: Equatable {
    var sendTimeout: Double
    var receiveTimeout: Double
    var noDelay: Bool
    var closeOnExec: Bool
}

extension FileDescriptor {
    /// The options of this socket (`TCP_NODELAY` reads false on a unix socket).
    var connectionOptions: ConnectionOptions {
        func timeout(_ option: Int32) -> Double {
            var value = timeval()
            var length = socklen_t(MemoryLayout<timeval>.size)
            guard getsockopt(raw, SOL_SOCKET, option, &value, &length) == 0 else { return -1 }
            return Double(value.tv_sec) + Double(value.tv_usec) / 1e6
        }
        var noDelay: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(raw, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, &length) != 0 { noDelay = 0 }
        return ConnectionOptions(
            sendTimeout: timeout(SO_SNDTIMEO), receiveTimeout: timeout(SO_RCVTIMEO), noDelay: noDelay != 0,
            closeOnExec: fcntl(raw, F_GETFD) & FD_CLOEXEC != 0)
    }
}
