import FastCGIWire

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A blocking connection to a FastCGI application, for tools and tests.
///
/// ```swift
/// let connection = try FastCGIConnection(to: "127.0.0.1:9000")
/// let reply = try connection.send(FastCGIRequest(params: [.init("REQUEST_METHOD", "GET")]))
/// print(String(decoding: reply.body, as: UTF8.self))
/// ```
public final class FastCGIConnection {
    private var fd: Int32
    private var decoder = RecordDecoder()
    /// How long a read or a send may wait before ``ClientError/Kind/timeout``.
    public var timeout: Duration
    /// Records read while waiting for another request's reply.
    private var pending: [Record] = []

    /// Connects to `address` (`host:port` or `unix:/path`).
    public init(to address: String, timeout: Duration = .seconds(10)) throws(ClientError) {
        let endpoint: Endpoint
        do { endpoint = try Endpoint(parsing: address) } catch { throw ClientError(.badAddress, error.reason) }
        self.timeout = timeout
        fd = try Self.connect(endpoint)
    }

    deinit { close() }

    /// ``timeout`` as `poll` takes it.
    private var pollMilliseconds: Int32 {
        let (seconds, attoseconds) = timeout.components
        return Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }

    /// Closes the connection.
    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Half-closes the sending side (the application then sees end of input).
    public func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Sends raw bytes. While the application is not reading, what it sends is read
    /// and kept (an echoing app would otherwise deadlock against us with both socket
    /// buffers full).
    public func write(_ bytes: [UInt8]) throws(ClientError) {
        var offset = 0
        while offset < bytes.count {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN | POLLOUT), revents: 0)
            let ready = poll(&pfd, 1, pollMilliseconds)
            if ready == 0 { throw ClientError(.timeout, "could not send within \(timeout)") }
            if ready < 0 {
                if errno == EINTR { continue }
                throw ClientError(.io, "poll failed: \(String(cString: strerror(errno)))")
            }
            if pfd.revents & Int16(POLLIN) != 0 {
                _ = try receive()
            }
            if pfd.revents & Int16(POLLOUT | POLLERR | POLLHUP) != 0 {
                let n = bytes.withUnsafeBytes {
                    Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                }
                if n < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    if errno == EPIPE || errno == ECONNRESET {
                        throw ClientError(.connectionClosed, "the application closed the connection while we were sending")
                    }
                    throw ClientError(.io, "send failed: \(String(cString: strerror(errno)))")
                }
                offset += n
            }
        }
    }

    /// Reads what is available into the decoder; false at end of stream.
    private func receive() throws(ClientError) -> Bool {
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ECONNRESET { throw ClientError(.connectionClosed, "the application reset the connection") }
                throw ClientError(.io, "recv failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 {
                peerClosed = true
                return false
            }
            decoder.append(chunk[..<n])
            return true
        }
    }

    /// Whether the application closed its side.
    private var peerClosed = false
    /// The receive buffer, kept for the connection's life.
    private var chunk = [UInt8](repeating: 0, count: 65536)

    /// Sends `FCGI_ABORT_REQUEST` for `requestID` (spec §5.4); the reply still ends
    /// with the request's `FCGI_END_REQUEST`.
    public func abort(requestID: UInt16) throws(ClientError) {
        try write(Record(type: .abortRequest, requestID: requestID).encoded)
    }

    /// Sends a whole request.
    public func write(_ request: FastCGIRequest) throws(ClientError) {
        try write(request.encoded)
    }

    /// Whether bytes arrived that no read has returned yet. After a request's
    /// `FCGI_END_REQUEST`, with nothing else in flight, this means the
    /// application is closing the connection (a swift-fcgi app writes a record
    /// behind its last END_REQUEST): like nginx, send the next request on a new
    /// connection.
    public var hasUnreadBytes: Bool { !pending.isEmpty || decoder.bufferedCount > 0 }

    /// Whether the application has closed its side (its FIN is here), checked
    /// without waiting, as Apache checks a kept connection before reusing it.
    public var peerHasClosed: Bool {
        if peerClosed { return true }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) == 0
    }

    /// Reads the next record; nil if the application closed the connection cleanly
    /// between records.
    public func readRecord() throws(ClientError) -> Record? {
        if !pending.isEmpty { return pending.removeFirst() }
        while true {
            do {
                if let record = try decoder.next() { return record }
            } catch {
                throw ClientError(.protocolViolation, "the application sent invalid FastCGI: \(error)")
            }
            if peerClosed {
                if decoder.bufferedCount == 0 { return nil }
                throw ClientError(.connectionClosed, "the connection closed in the middle of a record")
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, pollMilliseconds)
            if ready == 0 { throw ClientError(.timeout, "no reply within \(timeout)") }
            if ready < 0 {
                if errno == EINTR { continue }
                throw ClientError(.io, "poll failed: \(String(cString: strerror(errno)))")
            }
            let more = try receive()
            if !more {
                if decoder.bufferedCount == 0 { return nil }
                throw ClientError(.connectionClosed, "the connection closed in the middle of a record")
            }
        }
    }

    /// Reads records until the `FCGI_END_REQUEST` of `requestID`; records of other
    /// requests are kept for later calls. `received` sees each of the request's
    /// records as it arrives (to print a streamed response as it comes).
    public func readResponse(
        requestID: UInt16 = 1, received: (Record) -> Void = { _ in }
    ) throws(ClientError) -> FastCGIResponse {
        var response = FastCGIResponse(requestID: requestID)
        var skipped: [Record] = []
        defer { pending.insert(contentsOf: skipped, at: 0) }
        while true {
            guard let record = try readRecord() else {
                throw ClientError(.connectionClosed, "the application closed the connection before ending request \(requestID)")
            }
            guard record.requestID == requestID else {
                skipped.append(record)
                continue
            }
            response.records.append(record)
            received(record)
            switch record.type {
            case .stdout: response.stdout += record.content
            case .stderr: response.stderr += record.content
            case .endRequest:
                guard record.content.count >= 5 else {
                    throw ClientError(.protocolViolation, "END_REQUEST of \(record.content.count) bytes")
                }
                let c = record.content
                response.appStatus = UInt32(c[0]) << 24 | UInt32(c[1]) << 16 | UInt32(c[2]) << 8 | UInt32(c[3])
                guard let status = ProtocolStatus(rawValue: c[4]) else {
                    throw ClientError(.protocolViolation, "END_REQUEST with unknown protocol status \(c[4])")
                }
                response.protocolStatus = status
                return response
            default:
                throw ClientError(.protocolViolation, "unexpected \(record.type) record for request \(requestID)")
            }
        }
    }

    /// Sends `request` and reads its reply; `received` sees each record of it as
    /// it arrives.
    public func send(
        _ request: FastCGIRequest, received: (Record) -> Void = { _ in }
    ) throws(ClientError) -> FastCGIResponse {
        try write(request)
        return try readResponse(requestID: request.requestID, received: received)
    }

    /// Asks for management variables with `FCGI_GET_VALUES` and returns the answer.
    public func getValues(_ names: [String]) throws(ClientError) -> [String: String] {
        let query = NameValueCoding.encode(names.map { NameValuePair($0, "") })
        try write(Record(type: .getValues, requestID: 0, content: query).encoded)
        while true {
            guard let record = try readRecord() else {
                throw ClientError(.connectionClosed, "the application closed the connection instead of answering GET_VALUES")
            }
            guard record.type == .getValuesResult else {
                pending.append(record)
                continue
            }
            do {
                let pairs = try NameValueCoding.decode(record.content)
                var result: [String: String] = [:]
                for pair in pairs {
                    result[String(decoding: pair.name, as: UTF8.self)] = String(decoding: pair.value, as: UTF8.self)
                }
                return result
            } catch {
                throw ClientError(.protocolViolation, "GET_VALUES_RESULT: \(error)")
            }
        }
    }

    private static func connect(_ endpoint: Endpoint) throws(ClientError) -> Int32 {
        switch endpoint {
        case .unix(let path):
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
                throw ClientError(.badAddress, "unix socket path too long: \(path)")
            }
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard rc == 0 else {
                let error = errno
                Glibc.close(fd)
                throw ClientError(.connectionRefused, "cannot connect to \(endpoint): \(String(cString: strerror(error)))")
            }
            return fd
        case .tcp(let host, let port):
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_flags = AI_NUMERICSERV
            var result: UnsafeMutablePointer<addrinfo>?
            let rc = getaddrinfo(host.isEmpty ? "127.0.0.1" : host, String(port), &hints, &result)
            guard rc == 0, let info = result else {
                throw ClientError(.badAddress, "cannot resolve \(endpoint): \(String(cString: gai_strerror(rc)))")
            }
            defer { freeaddrinfo(result) }
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            guard Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
                let error = errno
                Glibc.close(fd)
                throw ClientError(.connectionRefused, "cannot connect to \(endpoint): \(String(cString: strerror(error)))")
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            return fd
        }
    }
}
