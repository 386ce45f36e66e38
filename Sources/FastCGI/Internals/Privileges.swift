#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Who the serving processes run as: started as root to bind a privileged
/// port or make a socket file for nginx's group, the app drops to an
/// unprivileged user before it serves, as nginx's workers and PHP-FPM's
/// `user`/`group` do.
enum Privileges {
    /// Throws when `user` or `group` is asked for and this process may not
    /// change to it (it is not root).
    static func requireChangeable(user: String?, group: String?) throws(ServerError) {
        guard user != nil || group != nil, geteuid() != 0 else { return }
        throw ServerError("--user/--group: only a process started as root can change its user", cause: .permission)
    }

    /// Becomes `user` (a name or number) and `group` (else the user's own
    /// group), with no supplementary groups. Throws, without changing
    /// anything, when a name is unknown or the process is not root.
    static func drop(toUser user: String?, group: String?) throws(ServerError) {
        guard user != nil || group != nil else { return }
        try requireChangeable(user: user, group: group)
        var uid: uid_t?
        var gid: gid_t?
        if let user {
            if let number = uid_t(user) {
                uid = number
                gid = getpwuid(number).map { $0.pointee.pw_gid }
            } else {
                guard let entry = getpwnam(user) else { throw ServerError("user \(user): no such user", cause: .permission) }
                uid = entry.pointee.pw_uid
                gid = entry.pointee.pw_gid
            }
        }
        if let group {
            if let number = gid_t(group) {
                gid = number
            } else {
                guard let entry = getgrnam(group) else { throw ServerError("group \(group): no such group", cause: .permission) }
                gid = entry.pointee.gr_gid
            }
        }
        // The group first: once the user is not root, it cannot be changed.
        if let gid {
            var groups = [gid]
            guard setgroups(1, &groups) == 0 else { throw ServerError.errno("setgroups") }
            guard setgid(gid) == 0 else { throw ServerError.errno("setgid(\(gid))") }
        }
        if let uid {
            guard setuid(uid) == 0 else { throw ServerError.errno("setuid(\(uid))") }
        }
    }
}
