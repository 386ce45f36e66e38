import FastCGI
import Hummingbird
import Logging

/// What a request context is made from when Hummingbird runs over FastCGI: the
/// request's logger and the params the web server sent. A context of your own
/// declares `typealias Source = FastCGIRequestContextSource`.
public struct FastCGIRequestContextSource: RequestContextSource {
    /// The request's logger: the server's, with the FastCGI `connection` and
    /// `request` ids and Hummingbird's `hb.request.id` in its metadata.
    public let logger: Logger
    /// The params (CGI variables) the web server sent: `REMOTE_ADDR`,
    /// `SCRIPT_NAME`, `HTTPS`, what the web server's configuration added.
    public let environ: FastCGI.Environment

    /// A source for one request.
    public init(logger: Logger, environ: FastCGI.Environment) {
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
public struct BasicFastCGIRequestContext: Hummingbird.RequestContext {
    public typealias Source = FastCGIRequestContextSource

    public var coreContext: CoreRequestContextStorage
    /// The params the web server sent with this request.
    public let environ: FastCGI.Environment

    public init(source: Source) {
        coreContext = CoreRequestContextStorage(source: source)
        environ = source.environ
    }
}
