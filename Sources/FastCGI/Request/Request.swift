import Logging
import Tracing

/// One request, with the same interface in FastCGI and CGI mode (the original
/// module's `cgi.Request`).
///
/// Headers are buffered and go out before the first body byte. Output is buffered
/// by default and sent on ``flush()``, ``close()`` or the end of the request; turn
/// buffering off with ``setBuffering(_:)`` to stream.
///
/// ```swift
/// struct Hello: Handler {
///     func process(_ request: Request) throws {
///         try request.setHeader("Content-Type", "text/plain")
///         try request.write("Hello, \(request.environ["REMOTE_ADDR"] ?? "world")!\n")
///     }
/// }
/// ```
///
/// A `Request` belongs to the thread running its handler; it is not `Sendable`.
open class Request {
    /// The params (CGI environment variables) sent by the web server.
    public let environ: CGIEnvironment
    /// The request body (`FCGI_STDIN`, or the process's stdin in CGI mode).
    public private(set) lazy var stdin = RequestInput(transport: transport, kind: .stdin)
    /// The filter role's `FCGI_DATA` stream (made on first use: most requests have none).
    public private(set) lazy var fastcgiData = RequestInput(transport: transport, kind: .data)
    /// The role the web server asked for.
    public let role: Role
    /// The server's logger with this request's `connection` and `request` ids in
    /// its metadata (made on first use: setting metadata is not free).
    public private(set) lazy var logger: Logger = {
        var logger = baseLogger
        if let connection { logger[metadataKey: "connection"] = "\(connection)" }
        if requestID != 0 { logger[metadataKey: "request"] = "\(requestID)" }
        return logger
    }()
    private let baseLogger: Logger
    private let connection: Int?

    let transport: any RequestTransport
    let limits: RequestLimits
    /// How ``offload(file:contentType:)`` hands a file over (nil: sent here).
    let fileOffload: FileOffload?
    // The mutable state below belongs to the handler's thread (a Request is not
    // Sendable) and is never lent out inout: the dynamic exclusivity checks, a
    // runtime call per access on the request path, are turned off for it.
    @exclusivity(unchecked) private var headers = HeaderList("Content-Type", "text/html; charset=utf-8")
    @exclusivity(unchecked) private var buffer: [UInt8] = []
    @exclusivity(unchecked) private var position = 0
    private var parsedFields: FieldCollector?
    private var parsedCookies: [String: String]?
    @exclusivity(unchecked) private var peerGone = false
    /// A `HEAD` request: the body the handler writes is counted, not sent.
    private let omitsBody: Bool
    /// The type of the error that ``traceback(_:detail:)`` answered with a 5xx
    /// page (the metrics' `error.type`).
    private(set) var handlerFailure: String?

    /// Whether the headers have been sent (after which they cannot change).
    @exclusivity(unchecked) public private(set) var headersSent = false
    /// Whether output is buffered (the default).
    @exclusivity(unchecked) public private(set) var isBuffering = true
    /// Whether ``close()`` was called.
    @exclusivity(unchecked) public private(set) var isClosed = false
    /// Whether `finish()` ended the request for the web server.
    @exclusivity(unchecked) public private(set) var isFinished = false
    /// What the server records once the response is answered (set as the
    /// handler starts; nil in a request made by hand).
    var answering: Answering?
    /// The request's server span (swift-distributed-tracing), when a tracer is
    /// set or bootstrapped (``Server/Configuration/tracer``): the handler runs
    /// with its context as `InstrumentationContext.current`, so spans started
    /// in it are its children. It ends with the response; a framework adapter
    /// may rename it for the matched route (`operationName`, `http.route`).
    public internal(set) var span: (any Span)?

    struct Answering {
        let server: Server
        /// When the metrics' timer started, and when the access log's clock did.
        let started: ContinuousClock.Instant?
        let began: ContinuousClock.Instant?
    }

    /// Creates the request from the engine's handle. Subclasses override this
    /// initialiser and call `super.init(handle)`.
    public required init(_ handle: Handle) {
        transport = handle.transport
        limits = handle.limits
        fileOffload = handle.fileOffload
        environ = handle.transport.environment
        role = handle.transport.role
        baseLogger = handle.logger
        connection = handle.connection
        omitsBody = environ.value(of: "REQUEST_METHOD", is: "HEAD")
    }

    /// Whether the web server aborted the request (`FCGI_ABORT_REQUEST`) or went
    /// away; output written after that is discarded.
    public var aborted: Bool { peerGone || transport.isAborted }

    /// The FastCGI request id (0 in CGI mode).
    public var requestID: Int { transport.requestID }

    // MARK: Form fields and cookies

    /// Form fields from `QUERY_STRING` and, for a POST, from an
    /// `application/x-www-form-urlencoded` or `multipart/form-data` body, parsed on
    /// first use. A name ending in `*` collects every value in a list; a name ending
    /// in `!` keeps the whole MIME part; a plain name keeps the value's exact bytes
    /// (``FormValue/bytes``; the last of a repeated name wins). Uploaded files are
    /// also in ``files``, with their filenames, whatever their names.
    public var params: [String: FormValue] {
        get throws { try parsedForm().result }
    }

    /// The uploaded files of a `multipart/form-data` body — every part that carries
    /// a `filename` — by field name as the form sent it (`<input type=file
    /// name="file">` is `files["file"]`), each with its filename, type and exact
    /// bytes. Parsed with ``params``.
    ///
    /// ```swift
    /// struct Upload: Handler {
    ///     func process(_ request: Request) throws {
    ///         guard let file = try request.files["file"] else { throw HTTPError(.badRequest, "no file") }
    ///         try request.setHeader("Content-Type", "text/plain; charset=utf-8")
    ///         try request.write("\(file.filename ?? "?"): \(file.body.count) bytes\n")
    ///     }
    /// }
    /// ```
    public var files: [String: MIMEPart] {
        get throws { try parsedForm().files }
    }

    /// ``params`` for an async handler: reads a form body with `await` (holding
    /// no thread while it arrives), then parses it as ``params`` does; ``params``
    /// and ``files`` then answer without reading.
    ///
    /// ```swift
    /// let server = Server(factories: [
    ///     .responder: .async { request in
    ///         let form = try await request.readForm()
    ///         try request.write("Hello, \(form["name"]?.string ?? "world")!\n")
    ///     }
    /// ])
    /// ```
    @discardableResult
    nonisolated(nonsending) public func readForm() async throws -> [String: FormValue] {
        if let parsedFields { return parsedFields.result }
        var body: [UInt8] = []
        if FormParser.readsBody(method: environ["REQUEST_METHOD"], contentType: environ["CONTENT_TYPE"]) {
            body = try await stdin.readAll(limit: limits.maxFormBytes, what: "form body")
        }
        let parsed = try FormParser.parse(
            query: environ.bytes("QUERY_STRING"), method: environ["REQUEST_METHOD"],
            contentType: environ["CONTENT_TYPE"]
        ) { _ in body }
        parsedFields = parsed
        return parsed.result
    }

    private func parsedForm() throws -> FieldCollector {
        if let parsedFields { return parsedFields }
        let parsed = try FormParser.parse(
            query: environ.bytes("QUERY_STRING"), method: environ["REQUEST_METHOD"],
            contentType: environ["CONTENT_TYPE"]
        ) { what in try stdin.readAll(limit: limits.maxFormBytes, what: what) }
        parsedFields = parsed
        return parsed
    }

    /// Cookies from `HTTP_COOKIE`; the first of repeated names wins.
    public var cookies: [String: String] {
        if let parsedCookies { return parsedCookies }
        let parsed = CookieParser.parse(environ["HTTP_COOKIE"] ?? "")
        parsedCookies = parsed
        return parsed
    }

    // MARK: Headers

    /// Replaces every header named `name` (compared without case) with one value.
    /// Throws ``HeaderError`` for a name that is not a token or a value holding
    /// CR, LF or NUL (nothing invalid reaches the wire), ``SequencingError`` once
    /// the headers were sent.
    public func setHeader(_ name: String, _ value: String) throws {
        try checkHeadersOpen("setHeader(\(name))")
        try HeaderError.check(name: name, value: value)
        headers.set(name, value)
    }

    /// Adds a header, keeping any others of the same name; refused as
    /// ``setHeader(_:_:)`` refuses.
    public func addHeader(_ name: String, _ value: String) throws {
        try checkHeadersOpen("addHeader(\(name))")
        try HeaderError.check(name: name, value: value)
        headers.add(name, value)
    }

    /// The value of the `index`-th header named `name`, or nil.
    public func getHeader(_ name: String, index: Int = 0) -> String? {
        headers.get(name, index: index)
    }

    /// Removes every header named `name` (the original's `del_header`; also
    /// ``removeHeader(_:)``).
    public func delHeader(_ name: String) throws(SequencingError) {
        try checkHeadersOpen("delHeader(\(name))")
        headers.remove(name)
    }

    /// Removes every header named `name`: ``delHeader(_:)`` in Swift's words.
    public func removeHeader(_ name: String) throws(SequencingError) { try delHeader(name) }

    /// Adds `value` to the comma-separated list of header `name`, unless present;
    /// refused as ``setHeader(_:_:)`` refuses.
    public func appendHeaderValue(_ name: String, _ value: String) throws {
        try checkHeadersOpen("appendHeaderValue(\(name))")
        try HeaderError.check(name: name, value: value)
        headers.appendValue(name, value)
    }

    /// Removes every header, including the default `Content-Type`.
    public func clearHeaders() throws(SequencingError) {
        try checkHeadersOpen("clearHeaders()")
        headers.removeAll()
    }

    /// Every header in order.
    public var headerFields: [HeaderField] { headers.fields.map { HeaderField(name: $0.name, value: $0.value) } }

    /// Sends the headers now. Throws if they were already sent.
    public func outputHeaders() throws(SequencingError) {
        try checkHeadersOpen("outputHeaders()")
        sendHeaders()
    }

    private func sendHeaders() {
        willSendHeaders()
        commitHeaders()
    }

    private func commitHeaders() {
        headersSent = true
        send(headers.encoded(), toError: false)
    }

    private func checkHeadersOpen(_ operation: @autoclosure () -> String) throws(SequencingError) {
        if headersSent { throw SequencingError(operation(), "the headers have already been sent") }
    }

    // MARK: Body

    /// Writes text (UTF-8) to the body.
    public func write(_ text: some StringProtocol) throws(SequencingError) {
        try checkOpen()
        var text = String(text)
        text.withUTF8 { appendBody(UnsafeRawBufferPointer($0)) }
    }

    /// Writes bytes to the body.
    public func write(_ bytes: some Collection<UInt8>) throws(SequencingError) {
        try checkOpen()
        let done: Void? = bytes.withContiguousStorageIfAvailable { appendBody(UnsafeRawBufferPointer($0)) }
        if done == nil { Array(bytes).withUnsafeBytes { appendBody($0) } }
    }

    private func checkOpen() throws(SequencingError) {
        guard !isClosed else { throw SequencingError("write", "the request output is closed") }
    }

    private func appendBody(_ bytes: UnsafeRawBufferPointer) {
        position += bytes.count
        if isBuffering {
            buffer.append(contentsOf: bytes)
        } else {
            sendBody(Array(bytes), flush: false, final: false)
        }
    }

    /// Turns output buffering on or off; turning it off flushes what was buffered.
    public func setBuffering(_ on: Bool) {
        if !on && isBuffering && !isClosed { flushBuffer(flush: false) }
        isBuffering = on
    }

    /// Sends the headers (if not yet sent) and everything written so far.
    public func flush() {
        guard !isClosed else { return }
        flushBuffer(flush: true)
        if !peerGone && !transport.flush() { peerGone = true }
    }

    /// Discards buffered body output. Only possible while buffering.
    public func clearOutput() throws(SequencingError) {
        guard isBuffering else { throw SequencingError("clearOutput()", "output is not buffered") }
        position -= buffer.count
        buffer.removeAll(keepingCapacity: true)
    }

    /// Number of body bytes written so far (buffered or sent): the original's
    /// `tell()`; also ``bytesWritten``.
    public func tell() -> Int { position }

    /// Number of body bytes written so far (buffered or sent): ``tell()`` in
    /// Swift's words.
    public var bytesWritten: Int { position }

    /// Sends everything and ends the body; later writes throw. Called by the server
    /// when the handler returns.
    public func close() {
        closeOutput(pushingTransport: true)
    }

    /// Sends the whole response and ends the request for the web server now, as
    /// PHP-FPM's `fastcgi_finish_request()` does, while the handler goes on with
    /// work the client need not wait for: a mail to send, a cache to warm.
    ///
    /// The part of the body the handler has not read is read and dropped first
    /// (the web server sends all of it before it reads the answer). Later writes
    /// throw; later reads find the end. With `FCGI_KEEP_CONN` the connection
    /// serves the web server's next request meanwhile. Metrics and the access
    /// log count the request here; the work after it is counted on its own
    /// (`fastcgi.server.background.duration`, and an access-log line marked
    /// `background`).
    ///
    /// ```swift
    /// struct SignUp: Handler {
    ///     func process(_ request: Request) throws {
    ///         try request.write("Welcome aboard!\n")
    ///         request.finish()  // the client has its answer now
    ///         request.logger.info("sending the welcome mail")
    ///     }
    /// }
    /// ```
    ///
    /// A draining server (a stop, a reload, recycling) waits for this work as it
    /// waits for requests in flight, up to its shutdown timeout. At threading
    /// levels 0 and 1 the handler's worker stays busy until the handler returns.
    /// In an async handler, `await request.finish()`.
    public func finish() {
        guard !isFinished else { return }
        while let chunk = try? stdin.read(65536), !chunk.isEmpty {}
        if role == .filter { while let chunk = try? fastcgiData.read(65536), !chunk.isEmpty {} }
        endForWebServer()
    }

    /// `finish()` in an async handler: the rest of the body is awaited, not
    /// waited for on the task's thread.
    nonisolated(nonsending) public func finish() async {
        guard !isFinished else { return }
        while let chunk = try? await stdin.read(65536), !chunk.isEmpty {}
        if role == .filter { while let chunk = try? await fastcgiData.read(65536), !chunk.isEmpty {} }
        endForWebServer()
    }

    private func endForWebServer() {
        closeOutput(pushingTransport: false)
        isFinished = true
        transport.finishEarly()
        answering?.server.answered(self)
    }

    /// Ends the body. The server calls it with `pushingTransport: false` when the
    /// handler returned: the transport then sends the last output together with
    /// `FCGI_END_REQUEST`, in one write.
    func closeOutput(pushingTransport: Bool) {
        guard !isClosed else { return }
        let pending = buffer
        buffer = []
        if headersSent {
            sendBody(pending, flush: true, final: true)
        } else {
            sendWholeResponse(pending)
        }
        isClosed = true
        if pushingTransport && !peerGone && !transport.flush() { peerGone = true }
    }

    /// Sends what is buffered. Without `flush` and with nothing buffered it does
    /// nothing, so turning buffering off does not commit the headers early.
    private func flushBuffer(flush: Bool) {
        guard !buffer.isEmpty || flush else { return }
        if !headersSent { sendHeaders() }
        let pending = buffer
        buffer.removeAll(keepingCapacity: true)
        sendBody(pending, flush: flush, final: false)
    }

    /// Sends headers and body together when the whole body is known at the end:
    /// the headers then carry its `Content-Length`, so the web server need not
    /// chunk the response (RFC 9110 §8.6). Not for an authorizer (its body never
    /// reaches the client), a status without a body, a length the app set itself,
    /// or a `HEAD` whose handler wrote nothing (it may have skipped the body).
    private func sendWholeResponse(_ body: [UInt8]) {
        willSendHeaders()
        let encoded = encodeBody(body, flush: true, final: true)
        let knowsLength = !omitsBody || !encoded.isEmpty
        if role != .authorizer, knowsLength, !statusForbidsBody, headers.get("Content-Length", index: 0) == nil {
            headers.add("Content-Length", String(encoded.count))
        }
        commitHeaders()
        if !omitsBody { send(encoded, toError: false) }
    }

    private func sendBody(_ chunk: [UInt8], flush: Bool, final: Bool) {
        if !headersSent { sendHeaders() }
        let encoded = encodeBody(chunk, flush: flush, final: final)
        if !omitsBody { send(encoded, toError: false) }
    }

    /// The code of the `Status` header, if it has one.
    private var statusHeaderCode: Int? {
        guard let status = headers.get("Status", index: 0)?.trimmingSpaces.prefix(3) else { return nil }
        return Int(status)
    }

    /// The response's status code: its `Status` header, else 302 with a
    /// `Location` (CGI's rule), else 200.
    var responseStatusCode: Int {
        statusHeaderCode ?? (headers.get("Location", index: 0) != nil ? 302 : 200)
    }

    /// 1xx, 204 and 304 responses have no body (no length, no coding).
    var statusForbidsBody: Bool {
        guard let code = statusHeaderCode else { return false }
        return (100..<200).contains(code) || code == 204 || code == 304
    }

    private func send(_ bytes: [UInt8], toError: Bool) {
        guard !peerGone, !bytes.isEmpty else { return }
        let ok = bytes.withUnsafeBytes { transport.write($0, toError: toError) }
        if !ok { peerGone = true }
    }

    // MARK: Hooks for subclasses

    /// Called once, just before the headers are sent; headers may still change here.
    /// ``GZipRequest`` uses it to negotiate compression.
    open func willSendHeaders() {}

    /// Transforms body bytes on their way out (identity by default). `flush` asks
    /// for everything so far to be made decodable; `final` marks the end of the body.
    open func encodeBody(_ chunk: [UInt8], flush: Bool, final: Bool) -> [UInt8] { chunk }

    // MARK: Errors

    /// Writes `message` to the error stream (`FCGI_STDERR`; stderr in CGI mode).
    public func error(_ message: String) {
        send(Array(message.utf8), toError: true)
    }

    /// Reports an uncaught handler error: logs it to the app's log (a client's
    /// 4xx as a notice, anything else as an error, which also goes to the error
    /// stream, the web server's error log) and, if the headers were not sent
    /// yet, replaces the response with an
    /// error page: the status of an ``HTTPError``, `400 Bad Request` for malformed
    /// form input (``FormError``), `413 Content Too Large` for input over a limit,
    /// else `500 Internal Server Error`. With `detail` the page shows the error
    /// (``DebugHandler``; for development only).
    public func traceback(_ error: any Error, detail: Bool = false) {
        let status = HTTPError.status(for: error)
        if status.code >= 500 { handlerFailure = "\(type(of: error))" }
        let path = environ["REQUEST_URI"] ?? environ["SCRIPT_NAME"] ?? ""
        let metadata: Logger.Metadata = ["path": "\(path)", "status": "\(status.code)"]
        // A client's mistake is a notice; the handler's own failure an error.
        if status.code < 500 {
            logger.notice("request refused: \(error)", metadata: metadata)
        } else {
            logger.error("handler error (\(type(of: error))): \(error)", metadata: metadata)
        }
        // FCGI_STDERR is the web server's error log (an [error] line in
        // nginx's for each record): a deliberate 4xx is no error of the app's.
        if status.code >= 500 { self.error("Uncaught error in handler (\(type(of: error))): \(error)\n") }
        guard !headersSent, !isClosed else { return }
        let title = "\(status.code) \(status.reason)"
        headers.removeAll()
        headers.set("Status", title)
        headers.set("Content-Type", "text/html; charset=utf-8")
        buffer.removeAll()
        position = 0
        let explanation =
            status.code < 500
            ? "The server could not process your request."
            : "The server encountered an error and could not complete your request."
        var page = """
            <!DOCTYPE html>
            <html><head><title>\(title)</title></head>
            <body><h1>\(status.reason)</h1>
            <p>\(explanation)</p>

            """
        if detail {
            page += "<pre>\(HTML.escape("\(type(of: error)): \(error)"))</pre>\n"
        }
        page += "</body></html>\n"
        try? write(page)
    }
}

/// HTML escaping for error pages.
enum HTML {
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }
}
