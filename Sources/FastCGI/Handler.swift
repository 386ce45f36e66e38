/// Handles requests: a new instance is made for each request, as in the original
/// module, so per-request state can live in stored properties.
///
/// ```swift
/// struct Hello: Handler {
///     func process(_ request: Request) throws {
///         try request.setHeader("Content-Type", "text/plain")
///         try request.write("Hello, world!\n")
///     }
/// }
/// try Server(handlers: [.responder: Hello.self]).run()
/// ```
public protocol Handler: SendableMetatype {
    /// Creates the handler for one request.
    init()
    /// Handles the request. An error thrown here goes to ``traceback(_:error:)``.
    func process(_ request: Request) throws
    /// Reports an error thrown by ``process(_:)``. The default logs it to the
    /// error stream and, if nothing was sent yet, answers `500 Internal Server Error`.
    func traceback(_ request: Request, error: any Error)
}

extension Handler {
    /// Logs the error and sends a plain 500 page (see ``Request/traceback(_:detail:)``).
    public func traceback(_ request: Request, error: any Error) {
        request.traceback(error)
    }
}

/// A ``Handler`` whose error page shows the error itself. For development only:
/// the page may reveal internals to whoever sent the request.
public protocol DebugHandler: Handler {}

extension DebugHandler {
    /// Logs the error and sends a 500 page that shows it.
    public func traceback(_ request: Request, error: any Error) {
        request.traceback(error, detail: true)
    }
}

/// How the server gets a handler for a request: from a ``Handler`` type (a new
/// instance per request) or from a closure.
public struct HandlerFactory: Sendable {
    let handle: @Sendable (Request) -> Void

    /// A new instance of `type` for each request.
    public static func type<H: Handler>(_ type: H.Type) -> HandlerFactory {
        HandlerFactory { request in
            let handler = H()
            do { try handler.process(request) } catch { handler.traceback(request, error: error) }
        }
    }

    /// A closure called for each request; a thrown error gets the default traceback.
    public static func closure(_ body: @escaping @Sendable (Request) throws -> Void) -> HandlerFactory {
        HandlerFactory { request in
            do { try body(request) } catch { request.traceback(error) }
        }
    }

    /// A closure that makes the handler for each request.
    public static func make(_ make: @escaping @Sendable () -> any Handler) -> HandlerFactory {
        HandlerFactory { request in
            let handler = make()
            do { try handler.process(request) } catch { handler.traceback(request, error: error) }
        }
    }

    /// Runs the handler for `request`, as the server does. Lets one factory wrap
    /// another, e.g. to prepare each request before the real handler sees it.
    public func callAsFunction(_ request: Request) { handle(request) }

    private init(handle: @escaping @Sendable (Request) -> Void) { self.handle = handle }
}
