#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A server could not start or keep running: a bad address, a socket call that
/// failed, an unsupported configuration.
public struct ServerError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, with the context needed to act on it.
    public var reason: String
    /// Why, in a form code can match on.
    public var cause: Cause

    /// Why a server could not start or keep running.
    public enum Cause: Hashable, Sendable {
        /// The address is not one to listen on (it does not parse or resolve,
        /// or a unix path is too long).
        case badAddress
        /// Someone else serves the address: the port is taken, or a unix
        /// socket there still answers.
        case addressInUse
        /// Not allowed: a socket's owner, group or mode could not be set, a
        /// user or group does not exist, or the system refused (`EACCES`,
        /// `EPERM`).
        case permission
        /// A system call failed with this `errno`.
        case system(errno: Int32)
        /// The server was used or started in a way it does not support (`run()`
        /// called twice, a pool worker without its socket).
        case usage
        /// The process manager could not start or keep its workers.
        case processManager
    }

    /// Creates an error with a readable reason.
    public init(_ reason: String, cause: Cause = .usage) {
        self.reason = reason
        self.cause = cause
    }

    /// An error for a system call that failed, with `errno` spelled out.
    static func errno(_ what: String) -> ServerError {
        let code = Glibc.errno
        let cause: Cause =
            switch code {
            case EADDRINUSE: .addressInUse
            case EACCES, EPERM: .permission
            default: .system(errno: code)
            }
        return ServerError("\(what): \(String(cString: strerror(code))) (errno \(code))", cause: cause)
    }

    public var description: String { reason }
}

/// Reading a request's input or writing its output failed.
public struct RequestError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, naming the request.
    public var reason: String
    /// Why, in a form a handler can act on.
    public var cause: Cause

    /// Why a read or write failed.
    public enum Cause: Hashable, Sendable {
        /// The stream or the connection failed.
        case failed
        /// The input was larger than a configured limit (``RequestLimits``): the
        /// client's doing, answered `413 Content Too Large`.
        case limitExceeded
        /// No input came for `ConnectionLimits.inputTimeout` before the body's
        /// end: the request was ended (`408 Request Timeout`).
        case inputStalled
        /// The web server aborted the request or went away before the body's end:
        /// what was read is not the whole body.
        case aborted
    }

    /// Whether the input was larger than a configured limit.
    public var isLimitExceeded: Bool { cause == .limitExceeded }

    /// Creates an error with a readable reason.
    public init(_ reason: String, cause: Cause = .failed) {
        self.reason = reason
        self.cause = cause
    }

    /// Creates an error with a readable reason; `isLimitExceeded` for input over a limit.
    public init(_ reason: String, isLimitExceeded: Bool) {
        self.init(reason, cause: isLimitExceeded ? .limitExceeded : .failed)
    }

    public var description: String { reason }
}

/// A `Request` method was called out of sequence, such as changing a header after
/// the headers were sent or writing after `close()` (the original module's
/// `SequencingError`).
public struct SequencingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The call that was refused, e.g. `setHeader("Status")`.
    public var operation: String
    /// Why it was refused.
    public var reason: String

    /// Creates an error for `operation`.
    public init(_ operation: String, _ reason: String) {
        self.operation = operation
        self.reason = reason
    }

    public var description: String { "\(operation): \(reason)" }
}

/// Form input (query string, urlencoded or multipart body) could not be parsed.
public struct FormError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong with the input, with the offending part named.
    public var reason: String
    /// Which rule the input broke.
    public var cause: Cause

    /// Which rule a form body broke.
    public enum Cause: Hashable, Sendable {
        /// A `%` not followed by two hex digits (URL-encoded forms).
        case invalidPercentEncoding
        /// `multipart/form-data` without a `boundary` parameter.
        case missingBoundary
        /// A multipart body that does not follow RFC 7578: no boundary line, no
        /// closing boundary, a part without headers, a `Content-Disposition` or
        /// a field name.
        case malformedMultipart
    }

    /// Creates an error with a readable reason.
    public init(_ reason: String, cause: Cause) {
        self.reason = reason
        self.cause = cause
    }

    public var description: String { "form data: \(reason)" }
}
