// Thin wrappers over the socket system calls the server needs, with errno mapped
// to readable errors.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Socket system calls used by the server.
enum Socket {
    /// Opens a listening socket on `address` (SO_REUSEADDR; a stale unix socket file
    /// is replaced).
    static func listen(on address: ListenAddress, backlog: Int32 = 128) throws(ServerError) -> Int32 {
        switch address {
        case .unix(let path):
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
                throw ServerError("unix socket path too long: \(path)")
            }
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw ServerError.errno("socket(AF_UNIX)") }
            unlink(path)
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
            return try finishListen(fd, backlog: backlog, address: address)
        case .tcp(let host, let port):
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
            hints.ai_family = host.isEmpty ? AF_INET : AF_UNSPEC
            var result: UnsafeMutablePointer<addrinfo>?
            let rc = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &result)
            guard rc == 0, let info = result else {
                throw ServerError("address \(address): \(String(cString: gai_strerror(rc)))")
            }
            defer { freeaddrinfo(result) }
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
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

    private static func finishListen(_ fd: Int32, backlog: Int32, address: ListenAddress) throws(ServerError) -> Int32 {
        guard Glibc.listen(fd, backlog) == 0 else {
            let error = ServerError.errno("listen \(address)")
            close(fd)
            throw error
        }
        return fd
    }

    /// Wakes every thread blocked in `accept` on `fd` (Linux returns EINVAL to them)
    /// without closing the descriptor, so no other file can take its number while
    /// workers may still use it.
    static func shutdownListener(_ fd: Int32) {
        shutdown(fd, Int32(SHUT_RDWR))
    }

    /// The local port of a TCP listening socket (useful after binding port 0).
    static func localPort(_ fd: Int32) -> UInt16? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
        default:
            return nil
        }
    }

    /// Ignores SIGPIPE for the whole process: a peer that goes away must show up as
    /// EPIPE on a write (marking the request aborted), never kill the process.
    static func ignoreSIGPIPE() {
        signal(SIGPIPE, SIG_IGN)
    }
}
