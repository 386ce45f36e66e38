/// An error a handler throws to answer with an HTTP status other than 500: the
/// response becomes a small page for that status (if nothing was sent yet), and
/// the message goes to the app's log.
///
/// ```swift
/// struct Pages: Handler {
///     func process(_ request: Request) throws {
///         guard request.environ["DOCUMENT_URI"] == "/" else { throw HTTPError(.notFound) }
///         try request.write("home")
///     }
/// }
/// ```
///
/// The library throws its own client errors the same way: malformed form input
/// (``FormError``) answers `400 Bad Request`, input over a configured limit
/// `413 Content Too Large`.
public struct HTTPError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The HTTP status code, 100–599.
    public var status: Int
    /// What went wrong, for the log (not shown to the client).
    public var message: String?

    /// An error answering `status`, with an optional message for the log.
    public init(_ status: Status, _ message: String? = nil) {
        self.status = status.code
        self.message = message
    }

    /// An HTTP status: a code, with the reason phrase of RFC 9110 for the common ones.
    public struct Status: Hashable, Sendable, ExpressibleByIntegerLiteral {
        /// The three-digit code.
        public var code: Int
        /// A status by code (out-of-range codes become 500).
        public init(_ code: Int) { self.code = (100...599).contains(code) ? code : 500 }
        public init(integerLiteral code: Int) { self.init(code) }

        /// 200
        public static let ok: Status = 200
        /// 201
        public static let created: Status = 201
        /// 204
        public static let noContent: Status = 204
        /// 301
        public static let movedPermanently: Status = 301
        /// 302
        public static let found: Status = 302
        /// 303
        public static let seeOther: Status = 303
        /// 304
        public static let notModified: Status = 304
        /// 307
        public static let temporaryRedirect: Status = 307
        /// 308
        public static let permanentRedirect: Status = 308
        /// 400
        public static let badRequest: Status = 400
        /// 401
        public static let unauthorized: Status = 401
        /// 403
        public static let forbidden: Status = 403
        /// 404
        public static let notFound: Status = 404
        /// 405
        public static let methodNotAllowed: Status = 405
        /// 408
        public static let requestTimeout: Status = 408
        /// 413
        public static let contentTooLarge: Status = 413
        /// 500
        public static let internalServerError: Status = 500

        /// The reason phrase (RFC 9110 §15), or "Error" for codes without one here
        /// ("OK" for other 2xx, "Redirect" for other 3xx).
        public var reason: String {
            switch code {
            case 200: "OK"
            case 201: "Created"
            case 202: "Accepted"
            case 204: "No Content"
            case 301: "Moved Permanently"
            case 302: "Found"
            case 303: "See Other"
            case 304: "Not Modified"
            case 307: "Temporary Redirect"
            case 308: "Permanent Redirect"
            case 400: "Bad Request"
            case 401: "Unauthorized"
            case 403: "Forbidden"
            case 404: "Not Found"
            case 405: "Method Not Allowed"
            case 408: "Request Timeout"
            case 409: "Conflict"
            case 410: "Gone"
            case 413: "Content Too Large"
            case 415: "Unsupported Media Type"
            case 422: "Unprocessable Content"
            case 429: "Too Many Requests"
            case 500: "Internal Server Error"
            case 501: "Not Implemented"
            case 503: "Service Unavailable"
            case 200..<300: "OK"
            case 300..<400: "Redirect"
            default: "Error"
            }
        }
    }

    public var description: String {
        let head = "\(status) \(Status(status).reason)"
        return message.map { "\(head): \($0)" } ?? head
    }

    /// The status an error thrown by a handler answers with.
    static func status(for error: any Error) -> Status {
        switch error {
        case let error as HTTPError: Status(error.status)
        case is FormError: .badRequest
        case let error as RequestError:
            switch error.cause {
            case .limitExceeded: .contentTooLarge
            case .inputStalled: .requestTimeout
            case .aborted: .badRequest
            case .failed: .internalServerError
            }
        default: .internalServerError
        }
    }
}
