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
}
