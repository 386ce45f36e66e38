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

/// Handles requests with `async` code: a new instance for each request, as
/// ``Handler``. While ``process(_:)`` awaits (a database, an HTTP client,
/// `Task.sleep`) it holds no thread.
///
/// ```swift
/// struct SlowHello: AsyncHandler {
///     func process(_ request: Request) async throws {
///         try await Task.sleep(for: .milliseconds(10))
///         try request.setHeader("Content-Type", "text/plain")
///         try request.write("Hello, world!\n")
///     }
/// }
/// let server = Server(factories: [.responder: .type(SlowHello.self)])
/// ```
///
/// A server with an async handler serves on the Swift engine at every threading
/// level (see ``ThreadingLevel``). Read the body with `await`
/// (`try await request.stdin.readAll()`, `for try await chunk in request.stdin`,
/// `try await request.readForm()`): a blocking read would hold one of the few
/// threads Swift concurrency runs tasks on. An abort from the web server, a lost
/// connection or the request timeout cancels the handler's task.
public protocol AsyncHandler: SendableMetatype {
    /// Creates the handler for one request.
    init()
    /// Handles the request. An error thrown here goes to ``traceback(_:error:)``.
    func process(_ request: Request) async throws
    /// Reports an error thrown by ``process(_:)``; the default is ``Handler``'s.
    func traceback(_ request: Request, error: any Error)
}

extension AsyncHandler {
    /// Logs the error and sends a plain 500 page (see ``Request/traceback(_:detail:)``).
    public func traceback(_ request: Request, error: any Error) {
        request.traceback(error)
    }
}

/// How the server gets a handler for a request: from a ``Handler`` or
/// ``AsyncHandler`` type (a new instance per request) or from a closure.
public struct HandlerFactory: Sendable {
    private enum Body: Sendable {
        case blocking(@Sendable (Request) -> Void)
        case suspending(@Sendable (Request) async -> Void)
    }

    private let body: Body

    /// Whether the handler is `async` (``AsyncHandler``, ``async(_:)``).
    public var isAsync: Bool {
        if case .suspending = body { return true }
        return false
    }

    /// A new instance of `type` for each request.
    public static func type<H: Handler>(_ type: H.Type) -> HandlerFactory {
        HandlerFactory(
            body: .blocking { request in
                let handler = H()
                do { try handler.process(request) } catch { handler.traceback(request, error: error) }
            })
    }

    /// A new instance of the async handler `type` for each request.
    public static func type<H: AsyncHandler>(_ type: H.Type) -> HandlerFactory {
        HandlerFactory(
            body: .suspending { request in
                let handler = H()
                do { try await handler.process(request) } catch {
                    failed(request, error) { handler.traceback($0, error: $1) }
                }
            })
    }

    /// A closure called for each request; a thrown error gets the default traceback.
    public static func closure(_ body: @escaping @Sendable (Request) throws -> Void) -> HandlerFactory {
        HandlerFactory(
            body: .blocking { request in
                do { try body(request) } catch { request.traceback(error) }
            })
    }

    /// An async closure called for each request; a thrown error gets the default
    /// traceback.
    ///
    /// ```swift
    /// let server = Server(factories: [
    ///     .responder: .async { request in
    ///         let body = try await request.stdin.readAll()
    ///         try request.write(body)
    ///     }
    /// ])
    /// ```
    public static func async(_ body: @escaping @Sendable (Request) async throws -> Void) -> HandlerFactory {
        HandlerFactory(
            body: .suspending { request in
                do { try await body(request) } catch {
                    failed(request, error) { $0.traceback($1) }
                }
            })
    }

    /// A closure that makes the handler for each request.
    public static func make(_ make: @escaping @Sendable () -> any Handler) -> HandlerFactory {
        HandlerFactory(
            body: .blocking { request in
                let handler = make()
                do { try handler.process(request) } catch { handler.traceback(request, error: error) }
            })
    }

    /// The cancellation an early end causes is not the handler's failure: the web
    /// server has gone, so there is nobody to send a page to.
    private static func failed(_ request: Request, _ error: any Error, traceback: (Request, any Error) -> Void) {
        if error is CancellationError && request.aborted {
            request.logger.debug("handler cancelled: the request ended early")
        } else {
            traceback(request, error)
        }
    }

    /// Runs the handler for `request`, as the server does. Lets one factory wrap
    /// another, e.g. to prepare each request before the real handler sees it.
    /// An async handler runs to its end on this thread (CGI mode, the blocking
    /// `Server.respond(to:)`), which runs the handler's task itself. Call it
    /// from a thread that runs no task: a timer or a continuation the handler
    /// awaits still resumes through Swift concurrency's own threads, which a
    /// caller that is one of them would be holding.
    public func callAsFunction(_ request: Request) {
        switch body {
        case .blocking(let handle): handle(request)
        case .suspending(let handle):
            nonisolated(unsafe) let lent = request  // this thread returns once the task is done with it
            CallerThreadExecutor.run { await handle(lent) }
        }
    }

    /// Runs the handler for `request` in the calling task: an async handler is
    /// awaited, a blocking one runs on the task's thread.
    public func callAsFunction(_ request: Request) async {
        switch body {
        case .blocking(let handle): handle(request)
        case .suspending(let handle): await handle(request)
        }
    }

    private init(body: Body) { self.body = body }
}
