import Logging

/// The input stream of a request a read refers to.
enum InputKind: Sendable {
    case stdin
    case data
}

/// What a `Request` needs from the engine serving it: the params, the input
/// streams, and somewhere to put output. One implementation per engine (libfcgi,
/// CGI, the Swift multiplexing engine), so `Request` itself never sees the wire.
protocol RequestTransport: AnyObject {
    /// The role the web server asked for.
    var role: Role { get }
    /// The request id on its connection (0 in CGI mode).
    var requestID: Int { get }
    /// The params.
    var environment: CGIEnvironment { get }
    /// Up to `max` bytes of `kind`; empty at the end of the stream.
    func read(_ kind: InputKind, max: Int) throws(RequestError) -> [UInt8]
    /// Up to `max` bytes of `kind`, suspending the calling task (not blocking its
    /// thread) until some come; empty at the end of the stream.
    nonisolated(nonsending) func readAsync(_ kind: InputKind, max: Int) async throws(RequestError) -> [UInt8]
    /// Writes body or error bytes; returns false when the peer is gone.
    func write(_ bytes: UnsafeRawBufferPointer, toError: Bool) -> Bool
    /// Pushes buffered output to the peer; returns false when the peer is gone.
    func flush() -> Bool
    /// Whether the web server aborted the request or went away.
    var isAborted: Bool { get }
    /// Ends the request for the web server now (`Request.finish()`): what was
    /// written goes out with the request's end, and the handler goes on. The
    /// input has been read to its end.
    func finishEarly()
}

extension RequestTransport {
    /// A transport with nobody waiting for the end (in memory) just flushes.
    func finishEarly() { _ = flush() }

    /// Transports whose input is at hand (in memory, CGI's stdin) read as they
    /// always do.
    nonisolated(nonsending) func readAsync(_ kind: InputKind, max: Int) async throws(RequestError) -> [UInt8] {
        try read(kind, max: max)
    }
}

extension Request {
    /// The engine-side handle a `Request` is created from.
    ///
    /// Opaque to users: the server creates it and passes it to
    /// `Request.init(_:)`, which a custom request type (such as ``GZipRequest``)
    /// forwards to `super.init(_:)`.
    public struct Handle {
        let transport: any RequestTransport
        let limits: RequestLimits
        let logger: Logger
        let fileOffload: FileOffload?
        /// The connection the request came on, for the logger's metadata.
        var connection: Int?

        init(
            transport: any RequestTransport, limits: RequestLimits, logger: Logger = Logger(label: "swift-fcgi"),
            fileOffload: FileOffload? = nil
        ) {
            self.transport = transport
            self.limits = limits
            self.logger = logger
            self.fileOffload = fileOffload
        }
    }
}

/// Bounds on what a request buffers in memory.
public struct RequestLimits: Sendable, Hashable {
    /// Largest body `Request.params` reads to parse a form (default 16 MiB).
    public var maxFormBytes: Int = 16 << 20
    /// Largest amount of stdin kept when a filter reads `FCGI_DATA` before stdin's
    /// end at threading levels 0 and 1 (default 16 MiB).
    public var maxBufferedStdin: Int = 16 << 20
    /// Largest amount of output held back while the request's body is still
    /// arriving (default 16 MiB). nginx stops sending a request's body once it
    /// has the response's head, so a handler that answers while it reads (an
    /// echo, an upload's progress) would wait for the rest of the body forever:
    /// until `FCGI_STDIN` ends, output — `flush()` included — stays here, and
    /// only past this limit is it written early.
    public var maxOutputBeforeBodyEnd: Int = 16 << 20
    /// Body bytes kept in memory while a request's body is gathered before its
    /// handler starts (every blocking handler); the rest goes to an anonymous
    /// file in ``temporaryDirectory``, as nginx's `client_body_buffer_size`
    /// (default 64 KiB), unless ``sharedBodyMemory`` has room for it.
    public var bodyMemory: Int = 64 << 10
    /// Memory shared by all the bodies being gathered, for what is past each
    /// one's ``bodyMemory`` (default 16 MiB): while it lasts, a larger body stays
    /// in memory too; once it is spent, bodies spill to their files.
    public var sharedBodyMemory: Int = 16 << 20
    /// Largest body gathered before the handler starts (default 256 MiB): a
    /// larger one starts its handler at this point and streams the rest, so
    /// that handler's thread may then wait on the network.
    public var maxGatheredBody: Int = 256 << 20
    /// Output bytes a connection keeps in memory for a peer that reads slower
    /// than the handlers write; the rest goes to an anonymous file in
    /// ``temporaryDirectory`` (default 256 KiB).
    public var outputMemory: Int = 256 << 10
    /// Most output queued for one connection, memory and file (default 256
    /// MiB): past it a handler's write waits for the peer to read, for at most
    /// `ConnectionLimits.sendTimeout` without progress.
    public var maxQueuedOutput: Int = 256 << 20
    /// Where gathered bodies and queued output spill to (default `$TMPDIR`, else
    /// `/tmp`). The files have no name: nothing is left behind, even after a crash.
    public var temporaryDirectory: String = RequestLimits.defaultTemporaryDirectory

    /// `$TMPDIR`, else `/tmp`.
    public static var defaultTemporaryDirectory: String { ProcessEnvironment.value("TMPDIR") ?? "/tmp" }

    /// The defaults.
    public init() {}
}
