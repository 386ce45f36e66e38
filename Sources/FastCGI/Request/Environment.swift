/// The request's params (the CGI environment), as the web server sent them.
///
/// Names and values are bytes on the wire. The `String` accessors decode UTF-8; a
/// value that is not valid UTF-8 (for example a Latin-1 header) is decoded as
/// ISO-8859-1, which maps every byte to one character, so nothing is lost: the
/// exact bytes are always available from ``bytes(_:)``.
public struct Environment: Sendable, Sequence {
    /// The pairs in the order they arrived.
    public let pairs: [(name: [UInt8], value: [UInt8])]

    /// Creates an environment from byte pairs.
    public init(pairs: [(name: [UInt8], value: [UInt8])]) {
        self.pairs = pairs
    }

    /// Creates an environment from strings (tests, CGI).
    public init(_ dictionary: [String: String]) {
        pairs = dictionary.sorted { $0.key < $1.key }.map { (Array($0.key.utf8), Array($0.value.utf8)) }
    }

    /// The raw bytes of the value named `name`, or nil if absent.
    public func bytes(_ name: String) -> [UInt8]? {
        let key = Array(name.utf8)
        return pairs.first { $0.name == key }?.value
    }

    /// The value named `name` as a string, or nil if absent.
    public subscript(name: String) -> String? {
        bytes(name).map(Environment.decode)
    }

    /// Whether a param named `name` is present.
    public func contains(_ name: String) -> Bool { bytes(name) != nil }

    /// Number of params.
    public var count: Int { pairs.count }

    /// Every param as strings (decoded as by ``subscript(_:)``); later duplicates win.
    public var dictionary: [String: String] {
        var result: [String: String] = [:]
        for pair in pairs { result[Environment.decode(pair.name)] = Environment.decode(pair.value) }
        return result
    }

    /// Iterates over `(name, value)` string pairs in arrival order.
    public func makeIterator() -> some IteratorProtocol<(name: String, value: String)> {
        pairs.lazy.map { (Environment.decode($0.name), Environment.decode($0.value)) }.makeIterator()
    }

    /// UTF-8 if valid, else ISO-8859-1 (lossless: one character per byte).
    static func decode(_ bytes: [UInt8]) -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
    }
}
