import FastCGI
import Hummingbird
import Logging
import NIOCore

/// What a request context is made from when Hummingbird runs over FastCGI: the
/// request's logger and the params the web server sent. A context of your own
/// declares `typealias Source = FastCGIRequestContextSource`.
public struct FastCGIRequestContextSource: RequestContextSource {
    /// The request's logger: the server's, with the FastCGI `connection` and
    /// `request` ids and Hummingbird's `hb.request.id` in its metadata.
    public let logger: Logger
    /// The params (CGI variables) the web server sent: `REMOTE_ADDR`,
    /// `SCRIPT_NAME`, `HTTPS`, what the web server's configuration added.
    public let environ: CGIEnvironment

    /// A source for one request.
    public init(logger: Logger, environ: CGIEnvironment) {
        self.logger = logger
        self.environ = environ
    }
}

/// The request context for a Hummingbird `Router` served over FastCGI, as
/// `BasicRequestContext` is for Hummingbird's own HTTP server:
///
/// ```swift
/// let router = Router(context: BasicFastCGIRequestContext.self)
/// router.get("/hello/{name}") { _, context in
///     "Hello, \(try context.parameters.require("name"))!"
/// }
/// ```
///
/// It is a `RemoteAddressRequestContext`: Hummingbird's tracing and logging
/// middleware see the client's address, from `REMOTE_ADDR` and `REMOTE_PORT`.
public struct BasicFastCGIRequestContext: RemoteAddressRequestContext {
    public typealias Source = FastCGIRequestContextSource

    public var coreContext: CoreRequestContextStorage
    /// The params the web server sent with this request.
    public let environ: CGIEnvironment

    public init(source: Source) {
        coreContext = CoreRequestContextStorage(source: source)
        environ = source.environ
    }

    /// The client's address as the web server saw it (`REMOTE_ADDR`,
    /// `REMOTE_PORT`); nil when it sent none that parses.
    public var remoteAddress: SocketAddress? { environ.remoteAddress }
}

extension CGIEnvironment {
    /// The client's address from `REMOTE_ADDR` and `REMOTE_PORT` (port 0 when
    /// the web server sent none), for a context of your own that is a
    /// `RemoteAddressRequestContext`; nil when `REMOTE_ADDR` is not an IP address.
    public var remoteAddress: SocketAddress? {
        guard let address = self["REMOTE_ADDR"], !address.isEmpty else { return nil }
        let port = self["REMOTE_PORT"].flatMap { Int($0) } ?? 0
        return try? SocketAddress(ipAddress: address, port: port)
    }
}
