// Thin wrappers over the socket system calls the server needs, with errno mapped
// to readable errors.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Socket system calls used by the server.
enum Socket {
    /// The system's most queued connections (`net.core.somaxconn`), the default
    /// backlog: 4096 on current kernels; 128 where it cannot be read.
    static var systemBacklog: Int32 {
        let fd = open("/proc/sys/net/core/somaxconn", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 128 }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 32)
        let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0, let value = Int32(String(decoding: bytes[..<count].prefix { $0 >= 0x30 && $0 <= 0x39 }, as: UTF8.self)),
            value > 0
        else { return 128 }
        return value
    }

    /// Opens a listening socket on `address`, close-on-exec (a child the app
    /// starts does not inherit it; a pool's workers get it as their fd 0 by
    /// `dup2`, which clears the flag). TCP with SO_REUSEADDR. A unix socket file
    /// already at the path is replaced only when nothing answers on it (a
    /// stale one, as spawn-fcgi checks): a live one belongs to another
    /// instance, and taking it over would leave that one unreachable. A unix
    /// socket gets `permissions` before it listens, so no client ever
    /// connects to it with the default mode; if it cannot listen, its file is
    /// removed.
    static func listen(
        on address: ListenAddress, permissions: SocketPermissions = SocketPermissions(), backlog: Int32 = systemBacklog
    ) throws(ServerError) -> Int32 {
        switch address {
        case .unix(let path):
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
                throw ServerError("unix socket path too long: \(path)", cause: .badAddress)
            }
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            try removeStale(path, address: addr)
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw ServerError.errno("socket(AF_UNIX)") }
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard rc == 0 else {
                let error = ServerError.errno("bind \(address)")
                close(fd)
                throw error
            }
            do {
                if !permissions.isEmpty { try apply(permissions, toSocketAt: path) }
                return try finishListen(fd, backlog: backlog, address: address)
            } catch {
                close(fd)
                unlink(path)
                throw error
            }
        case .tcp(let host, let port):
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
            hints.ai_family = host.isEmpty ? AF_INET : AF_UNSPEC
            var result: UnsafeMutablePointer<addrinfo>?
            let rc = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &result)
            guard rc == 0, let info = result else {
                throw ServerError("address \(address): \(String(cString: gai_strerror(rc)))", cause: .badAddress)
            }
            defer { freeaddrinfo(result) }
            let fd = socket(
                info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), info.pointee.ai_protocol)
            guard fd >= 0 else { throw ServerError.errno("socket for \(address)") }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
                let error = ServerError.errno("bind \(address)")
                close(fd)
                throw error
            }
            return try finishListen(fd, backlog: backlog, address: address)
        }
    }

    /// Gives the unix socket at `path` the mode, owner and group asked for.
    static func apply(_ permissions: SocketPermissions, toSocketAt path: String) throws(ServerError) {
        if permissions.owner != nil || permissions.group != nil {
            let uid = try permissions.owner.map { name throws(ServerError) in try userID(name) } ?? uid_t.max
            let gid = try permissions.group.map { name throws(ServerError) in try groupID(name) } ?? gid_t.max
            guard chown(path, uid, gid) == 0 else { throw ServerError.errno("chown \(path)") }
        }
        if let mode = permissions.mode, chmod(path, mode_t(mode)) != 0 { throw ServerError.errno("chmod \(path)") }
    }

    private static func userID(_ name: String) throws(ServerError) -> uid_t {
        if let number = uid_t(name) { return number }
        guard let entry = getpwnam(name) else { throw ServerError("socket owner \(name): no such user", cause: .permission) }
        return entry.pointee.pw_uid
    }

    private static func groupID(_ name: String) throws(ServerError) -> gid_t {
        if let number = gid_t(name) { return number }
        guard let entry = getgrnam(name) else { throw ServerError("socket group \(name): no such group", cause: .permission) }
        return entry.pointee.gr_gid
    }

    /// The address a socket is bound to (`getsockname`), nil if it cannot be read.
    static func localAddress(_ fd: Int32) -> sockaddr_storage? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return rc == 0 ? storage : nil
    }

    /// Whether a listening TCP socket is reachable only from this machine (bound to
    /// 127.0.0.0/8 or ::1); true for a unix socket, false for 0.0.0.0, :: and the
    /// machine's other addresses.
    static func isLocalOnly(_ fd: Int32) -> Bool {
        guard var storage = localAddress(fd) else { return true }
        switch Int32(storage.ss_family) {
        case AF_INET:
            let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in.self).sin_addr.s_addr }
            return UInt32(bigEndian: address) >> 24 == 127
        case AF_INET6:
            let bytes = withUnsafeBytes(of: &storage) { raw in
                withUnsafeBytes(of: raw.load(as: sockaddr_in6.self).sin6_addr) { Array($0) }
            }
            let loopback = bytes[..<15].allSatisfy { $0 == 0 } && bytes[15] == 1
            let mappedLoopback = bytes[..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF && bytes[12] == 127
            return loopback || mappedLoopback
        default:
            return true
        }
    }

    private static func finishListen(_ fd: Int32, backlog: Int32, address: ListenAddress) throws(ServerError) -> Int32 {
        guard Glibc.listen(fd, backlog) == 0 else {
            let error = ServerError.errno("listen \(address)")
            close(fd)
            throw error
        }
        return fd
    }

    /// Clears the way for a unix socket at `path`: nothing there, or a socket
    /// file nothing answers on (unlinked). Refuses a live socket and a file
    /// that is not a socket.
    private static func removeStale(_ path: String, address: sockaddr_un) throws(ServerError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }  // nothing there
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw ServerError("unix:\(path) exists and is not a socket: not replacing it", cause: .addressInUse)
        }
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { throw ServerError.errno("socket(AF_UNIX)") }
        var address = address
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        let code = errno
        close(probe)
        // EAGAIN: a live listener whose queue is full.
        if connected == 0 || code == EAGAIN {
            throw ServerError(
                "unix:\(path): another process serves this socket; not taking it over (stop it, or choose another path)",
                cause: .addressInUse)
        }
        unlink(path)
    }

    /// The local port of a TCP listening socket (useful after binding port 0).
    static func localPort(_ fd: Int32) -> UInt16? {
        guard let storage = localAddress(fd) else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafeBytes(of: storage) { UInt16(bigEndian: $0.load(as: sockaddr_in.self).sin_port) }
        case AF_INET6:
            return withUnsafeBytes(of: storage) { UInt16(bigEndian: $0.load(as: sockaddr_in6.self).sin6_port) }
        default:
            return nil
        }
    }

    /// A file's path and the device and inode it had: the socket file the server made.
    struct FileIdentity {
        let path: String
        let device: UInt
        let inode: UInt
    }

    /// The identity of the file at `path` now, nil if there is none.
    static func fileIdentity(_ path: String) -> FileIdentity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileIdentity(path: path, device: UInt(info.st_dev), inode: UInt(info.st_ino))
    }

    /// Removes the socket file the server made, if it is still that file (a new
    /// instance started meanwhile may have bound the path again).
    static func removeFile(_ created: FileIdentity) {
        guard let now = fileIdentity(created.path), now.device == created.device, now.inode == created.inode else { return }
        _ = unlink(created.path)
    }

    /// Ignores SIGPIPE for the whole process: a peer that goes away must show up as
    /// EPIPE on a write (marking the request aborted), never kill the process.
    static func ignoreSIGPIPE() {
        signal(SIGPIPE, SIG_IGN)
    }
}

/// The address of a connected peer, for FCGI_WEB_SERVER_ADDRS and logs.
enum PeerAddress: Sendable, CustomStringConvertible {
    case ipv4([UInt8])
    case ipv6([UInt8])
    case unix

    var description: String {
        switch self {
        case .ipv4(let b): b.map(String.init).joined(separator: ".")
        case .ipv6(let b):
            stride(from: 0, to: 16, by: 2).map { String(UInt16(b[$0]) << 8 | UInt16(b[$0 + 1]), radix: 16) }.joined(
                separator: ":")
        case .unix: "unix"
        }
    }
}

/// FCGI_WEB_SERVER_ADDRS: the web servers allowed to connect over TCP.
struct WebServerAllowList: Sendable {
    private let allowed: [PeerAddress]?

    /// Parses the comma-separated list (IPv4 and IPv6); nil or empty allows all.
    init(_ text: String?) {
        guard let text, !text.trimmingSpaces.isEmpty else {
            allowed = nil
            return
        }
        allowed = text.split(separator: ",").compactMap { item in
            let item = item.trimmingSpaces
            var v4 = in_addr()
            if inet_pton(AF_INET, item, &v4) == 1 { return .ipv4(withUnsafeBytes(of: v4) { Array($0) }) }
            var v6 = in6_addr()
            if inet_pton(AF_INET6, item, &v6) == 1 { return .ipv6(withUnsafeBytes(of: v6) { Array($0) }) }
            return nil
        }
    }

    /// Whether the list limits TCP peers at all (it was set, and not empty).
    var restricts: Bool { allowed != nil }

    /// Whether `peer` may connect. Unix-socket peers always may: the list names IP
    /// addresses, and file permissions guard a unix socket (libfcgi refuses them —
    /// a documented deviation).
    func allows(_ peer: PeerAddress) -> Bool {
        guard let allowed else { return true }
        switch peer {
        case .unix: return true
        case .ipv4(let bytes):
            return allowed.contains { if case .ipv4(let a) = $0 { return a == bytes } else { return false } }
        case .ipv6(let bytes):
            // An IPv4 client of a dual-stack socket arrives as ::ffff:a.b.c.d.
            if bytes.count == 16, bytes[..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
                return allows(.ipv4(Array(bytes[12...])))
            }
            return allowed.contains { if case .ipv6(let a) = $0 { return a == bytes } else { return false } }
        }
    }
}
