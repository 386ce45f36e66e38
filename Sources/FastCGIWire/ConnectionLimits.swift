/// Bounds that keep a hostile or broken peer from using unbounded memory.
public struct ConnectionLimits: Sendable, Hashable {
    /// Largest params block (all `FCGI_PARAMS` content) of one request. Default 1 MiB.
    public var maxParamsBytes = 1 << 20
    /// Most requests in flight on one connection (multiplexing). Default 100.
    public var maxRequestsPerConnection = 100
    /// Most bytes of pipelined requests held while an earlier request on the same
    /// connection runs (threading levels 0 and 1). Default 1 MiB.
    public var maxPipelinedBytes = 1 << 20

    /// Most connections open at once; more are refused (closed at once). Default
    /// 16,384: an idle connection costs no thread and about 2 KiB, and the server
    /// raises its open-file limit to fit (as far as the hard limit allows).
    public var maxConnections = 16_384
    /// How long a connection with no request in flight may stay silent before it is
    /// closed (nil: no limit). Also bounds a peer that sends half a record and stalls.
    public var idleTimeout: Duration? = .seconds(300)
    /// How long a request's input (stdin, a filter's `FCGI_DATA`) may stall — no
    /// bytes for it before its end — before the request is ended: its handler's
    /// read fails, the web server gets `408 Request Timeout` if nothing was sent
    /// and its `FCGI_END_REQUEST`. Default 60, as nginx's `client_body_timeout`
    /// (nil: no limit).
    public var inputTimeout: Duration? = .seconds(60)
    /// How long a connection's output may make no progress — the peer reads
    /// nothing while output waits for it — before the connection is closed and
    /// its requests aborted: the web server (or a client it lets through) that
    /// stopped reading frees what it held. Default 60, as nginx's
    /// `send_timeout` (nil: no limit).
    public var sendTimeout: Duration? = .seconds(60)
    /// The listening socket's backlog: connections the kernel queues before
    /// the server accepts them (nil: the system's `net.core.somaxconn`).
    public var backlog: Int?

    /// The defaults.
    public init() {}
}
