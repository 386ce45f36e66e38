#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// systemd's readiness protocol (`Type=notify`, sd_notify(3)): state changes as
/// datagrams to the unix socket named by `NOTIFY_SOCKET`. Without it (not under
/// systemd, or another `Type=`), nothing is sent. The variable is taken out of
/// the environment when read, so neither workers nor processes the app starts
/// speak for this service.
final class SystemdNotify: Sendable {
    private let descriptor: FileDescriptor
    private let address: sockaddr_un
    private let addressLength: socklen_t

    /// The notifier, if systemd asked for notifications.
    static func fromEnvironment() -> SystemdNotify? {
        guard let path = ProcessEnvironment.take("NOTIFY_SOCKET"), !path.isEmpty else { return nil }
        return SystemdNotify(path: path)
    }

    private init?(path: String) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        // "@name": an abstract socket, whose name starts with a NUL byte.
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let raw = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard raw >= 0 else { return nil }
        _ = fcntl(raw, F_SETFD, FD_CLOEXEC)
        descriptor = FileDescriptor(adopting: raw)
        self.address = address
        addressLength = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
    }

    /// Sends `state` (`READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=…`, one per
    /// line); failures are ignored, as sd_notify's are.
    func send(_ state: String) {
        var address = self.address
        let bytes = Array(state.utf8)
        _ = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(descriptor.raw, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), $0, addressLength)
                }
            }
        }
    }

    /// `MONOTONIC_USEC=…`, which systemd wants beside `RELOADING=1`.
    static var monotonicField: String {
        "MONOTONIC_USEC=\(Int(MonotonicClock.seconds() * 1_000_000))"
    }
}
