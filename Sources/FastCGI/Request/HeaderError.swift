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
        if let value, !allBytes(of: value, satisfy: isValueByte) {
            throw HeaderError(name: name, reason: .invalidValue)
        }
    }

    /// Whether `text` is a non-empty RFC 9110 token.
    static func isToken(_ text: String) -> Bool { !text.utf8.isEmpty && allBytes(of: text, satisfy: isTokenByte) }

    /// Whether every UTF-8 byte of `text` passes `test`: over the string's own
    /// storage when it has it (a header is checked each time one is set, and
    /// the view's generic iteration cost more than the test).
    private static func allBytes(of text: String, satisfy test: (UInt8) -> Bool) -> Bool {
        let direct = text.utf8.withContiguousStorageIfAvailable { bytes in
            for byte in bytes where !test(byte) { return false }
            return true
        }
        return direct ?? text.utf8.allSatisfy(test)
    }

    private static func isValueByte(_ byte: UInt8) -> Bool { byte >= 14 || forbiddenInValue >> byte & 1 == 0 }

    /// NUL, LF and CR, as bits: what a header value may not hold.
    private static let forbiddenInValue: UInt16 = 0x2401

    /// `tchar` of RFC 9110 §5.6.2 (ALPHA, DIGIT and ``!#$%&'*+-.^_`|~``) as
    /// bits, for bytes 0–63 and 64–127: a header name is checked every time one
    /// is set, so this is one shift and mask a byte.
    private static let tokenLow: UInt64 = 0x03ff_6cfa_0000_0000
    private static let tokenHigh: UInt64 = 0x57ff_ffff_c7ff_fffe

    private static func isTokenByte(_ byte: UInt8) -> Bool {
        byte < 64 ? tokenLow >> byte & 1 != 0 : byte < 128 && tokenHigh >> (byte - 64) & 1 != 0
    }
}
