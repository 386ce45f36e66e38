#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Variables a parent process passes to this one, read once and removed.
enum ProcessEnvironment {
    /// The value of `name`, removed from the environment (so processes the app
    /// starts do not inherit it); nil when it is not set.
    static func take(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let text = String(cString: value)
        unsetenv(name)
        return text
    }

    /// The value of `name`, left in place; nil when unset or empty.
    static func value(_ name: String) -> String? {
        guard let value = getenv(name), value.pointee != 0 else { return nil }
        return String(cString: value)
    }

    /// Whether `name` is set.
    static func contains(_ name: String) -> Bool { getenv(name) != nil }

    /// Takes ownership of descriptor `raw`, inherited from the parent, and marks it
    /// close-on-exec (inherited descriptors are not).
    static func adoptInherited(_ raw: Int32) -> FileDescriptor? {
        guard raw >= 0, fcntl(raw, F_SETFD, FD_CLOEXEC) == 0 else { return nil }
        return FileDescriptor(adopting: raw)
    }
}
