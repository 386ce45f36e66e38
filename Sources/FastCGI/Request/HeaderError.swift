/// A response header was refused before it could reach the wire: its name is not
/// an RFC 9110 token, or its value holds CR, LF or NUL (which would end the header
/// and let the rest be read as more headers or as the body: response splitting).
///
/// ```swift
/// struct Next: Handler {
///     func process(_ request: Request) throws {
///         let userSuppliedURL = try request.params["next"]?.string ?? "/"
///         do {
///             try request.redirect(to: userSuppliedURL)
///         } catch let error as HeaderError {
///             request.error("refused: \(error)\n")
///             throw HTTPError(.badRequest, "not a place to go")
///         }
///     }
/// }
/// ```
public struct HeaderError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Why a header was refused.
    public enum Reason: Hashable, Sendable, CustomStringConvertible {
        /// The name is empty or holds a byte that is not a token character.
        case invalidName
        /// The value holds a carriage return, line feed or NUL byte.
        case invalidValue
        /// A cookie's name is not a token, or its path or domain holds `;` or a
        /// control character (``Request/setCookie(_:_:maxAge:path:domain:secure:httpOnly:sameSite:)``).
        case invalidCookie

        public var description: String {
            switch self {
            case .invalidName: "the name is not an HTTP token (RFC 9110 §5.1)"
            case .invalidValue: "the value holds CR, LF or NUL (RFC 9110 §5.5)"
            case .invalidCookie: "the cookie name is not a token, or its path or domain holds ';' or a control character"
            }
        }
    }

    /// The header's name, as given (escaped for the message).
    public var name: String
    /// What is wrong with it.
    public var reason: Reason

    /// Creates an error for header `name`.
    public init(name: String, reason: Reason) {
        self.name = name
        self.reason = reason
    }

    public var description: String {
        "response header \(name.debugDescription) refused: \(reason)"
    }

    /// Checks a header before it is kept; throws for anything that could split
    /// the response. Obsolete line folding is not allowed in responses either.
    static func check(name: String, value: String?) throws(HeaderError) {
        guard isToken(name) else {
            throw HeaderError(name: name, reason: .invalidName)
        }
        if let value, value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }) {
            throw HeaderError(name: name, reason: .invalidValue)
        }
    }

    /// Whether `text` is a non-empty RFC 9110 token.
    static func isToken(_ text: String) -> Bool { !text.utf8.isEmpty && text.utf8.allSatisfy(isTokenByte) }

    /// `tchar` of RFC 9110 §5.6.2.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
