/// Parses an HTTP `Cookie` header (`a=1; b="two"`).
enum CookieParser {
    static func parse(_ header: String) -> [String: String] {
        var cookies: [String: String] = [:]
        for item in header.split(separator: ";") {
            guard let eq = item.firstIndex(of: "=") else { continue }
            let name = item[..<eq].trimmingSpaces
            var value = item[item.index(after: eq)...].trimmingSpaces
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = String(value.dropFirst().dropLast())
            }
            guard !name.isEmpty, cookies[name] == nil else { continue }
            cookies[name] = value
        }
        return cookies
    }

    /// A cookie value percent-decoded (the raw value if an escape is malformed or
    /// the bytes are not UTF-8).
    static func decode(_ value: String) -> String {
        guard value.utf8.contains(UInt8(ascii: "%")),
            let bytes = PercentCoding.decode(Array(value.utf8)[...]),
            let text = String(validating: bytes, as: UTF8.self)
        else { return value }
        return text
    }

    /// A value as a `cookie-value` of RFC 6265 §4.1.1: every byte outside
    /// `cookie-octet` (and `%`) percent-encoded.
    static func encode(_ value: String) -> String {
        PercentCoding.encode(value) { b in
            b == 0x21 || (0x23...0x2B).contains(b) || (0x2D...0x3A).contains(b) || (0x3C...0x5B).contains(b)
                || (0x5D...0x7E).contains(b)
        }
    }
}
