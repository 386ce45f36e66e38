/// Who may connect to a unix socket the server creates (`Server(address:
/// "unix:…")`): its mode, owner and group, as spawn-fcgi's `-M`, `-U` and `-G`
/// and PHP-FPM's `listen.mode`, `listen.owner` and `listen.group` set them. nginx
/// then connects as its own user without a world-writable socket:
///
/// ```swift
/// let permissions = SocketPermissions(mode: 0o660, group: "www-data")
/// ```
///
/// Unset fields leave what the process's umask and user give.
public struct SocketPermissions: Sendable, Hashable {
    /// The file mode, e.g. `0o660`.
    public var mode: UInt32?
    /// The owning user, by name or number.
    public var owner: String?
    /// The owning group, by name or number.
    public var group: String?

    /// Permissions to apply; nil fields are left alone.
    public init(mode: UInt32? = nil, owner: String? = nil, group: String? = nil) {
        self.mode = mode
        self.owner = owner
        self.group = group
    }

    /// Whether anything is to be changed.
    var isEmpty: Bool { mode == nil && owner == nil && group == nil }
}
