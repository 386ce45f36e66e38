/// A CGI response as an application writes it on `FCGI_STDOUT`: header lines, a
/// blank line, then the body (RFC 3875 §6). Shared by the client and the
/// in-memory test harness, so both read a response the same way.
public struct CGIResponse: Sendable, Hashable {
    /// A header line, split at its first colon (leading spaces of the value dropped).
    public struct Field: Sendable, Hashable {
        /// The header name as written.
        public var name: String
        /// The value.
        public var value: String
    }

    /// The header lines, in order.
    public var fields: [Field]
    /// The bytes after the blank line that ends the headers.
    public var body: [UInt8]

    /// Splits `stdout` at the first `\r\n\r\n` (or `\n\n`); without a blank line it
    /// is all headers and no body.
    public init(parsing stdout: [UInt8]) {
        let (head, body) = Self.split(stdout)
        self.body = body
        fields = head.split(separator: 10).compactMap { line in
            // Bytes, not Characters: Swift treats "\r\n" as one Character.
            let line = line.last == 13 ? line.dropLast() : line
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return nil }
            let value = line[(colon + 1)...].drop { $0 == UInt8(ascii: " ") }
            return Field(name: String(decoding: line[..<colon], as: UTF8.self), value: String(decoding: value, as: UTF8.self))
        }
    }

    /// The first header named `name` (compared without ASCII case).
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return fields.first { $0.name.lowercased() == wanted }?.value
    }

    /// The HTTP status a web server makes of these headers: the `Status` header's
    /// code, else 302 with a `Location`, else 200 (RFC 3875 §6.2–6.3).
    public var status: Int {
        if let line = header("Status"), let code = Int(line.prefix { $0 != " " }) { return code }
        return header("Location") == nil ? 200 : 302
    }

    /// Where the headers end in `bytes`: the index of the line feed that starts the
    /// blank line and the index of the body's first byte; nil while no blank line
    /// has arrived.
    package static func headerEnd(in bytes: [UInt8]) -> (head: Int, body: Int)? {
        var i = 0
        while i < bytes.count {
            if bytes[i] == 10 {
                if i + 1 < bytes.count, bytes[i + 1] == 10 { return (i, i + 2) }
                if i + 2 < bytes.count, bytes[i + 1] == 13, bytes[i + 2] == 10 { return (i, i + 3) }
            }
            i += 1
        }
        return nil
    }

    private static func split(_ bytes: [UInt8]) -> ([UInt8], [UInt8]) {
        guard let end = headerEnd(in: bytes) else { return (bytes, []) }
        return (Array(bytes[..<end.head]), Array(bytes[end.body...]))
    }
}
