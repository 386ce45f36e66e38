/// A FastCGI endpoint, where a server listens or a client connects: parsed from `host:port`, `:port`, `[v6]:port` or `unix:/path`.
public enum Endpoint: Hashable, Sendable, CustomStringConvertible {
    /// A TCP address; an empty host means every IPv4 address.
    case tcp(host: String, port: UInt16)
    /// A unix-domain socket path.
    case unix(path: String)

    /// Parses `host:port`, `:port`, `[v6]:port`, `unix:/path` or an absolute path.
    public init(parsing text: String) throws(EndpointError) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw EndpointError("address \"\(text)\": empty unix socket path") }
            self = .unix(path: path)
            return
        }
        if text.hasPrefix("/") {
            self = .unix(path: text)
            return
        }
        guard let colon = text.lastIndex(of: ":") else {
            throw EndpointError("address \"\(text)\": expected host:port, :port or unix:/path")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let port = UInt16(text[text.index(after: colon)...]) else {
            throw EndpointError("address \"\(text)\": port must be a number from 0 to 65535")
        }
        self = .tcp(host: host, port: port)
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }
}

extension Endpoint: ExpressibleByStringLiteral {
    /// An endpoint written in the source, as the README writes addresses:
    /// `address: "unix:/run/app/app.sock"` or `"127.0.0.1:9000"`. A literal that
    /// does not parse is a programming error and stops the program with the reason;
    /// parse text from outside with ``init(parsing:)``.
    public init(stringLiteral text: String) {
        do {
            try self.init(parsing: text)
        } catch {
            preconditionFailure("\(error)")
        }
    }
}

/// An endpoint string that could not be parsed.
public struct EndpointError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong with the address.
    public var reason: String

    /// Creates an error with a readable reason.
    public init(_ reason: String) { self.reason = reason }

    public var description: String { reason }
}
