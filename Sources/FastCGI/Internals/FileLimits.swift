import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The process's limit on open descriptors.
enum FileLimits {
    /// Raises the soft limit on open files towards the hard one so that
    /// `connections` connections (one descriptor each) and the server's own
    /// descriptors fit, as Go's runtime does at start; logs when they cannot.
    static func raiseOpenFiles(toServe connections: Int, logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        let wanted = rlim_t(connections + 256)
        guard limit.rlim_cur < wanted else { return }
        let before = limit.rlim_cur
        limit.rlim_cur = min(wanted, limit.rlim_max)
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 { limit.rlim_cur = before }
        if limit.rlim_cur < wanted {
            logger.notice(
                "open-file limit \(limit.rlim_cur) (hard \(limit.rlim_max)) is below the \(connections) connections allowed: raise it (ulimit -n, LimitNOFILE=) to serve them all"
            )
        }
    }
}
