import FastCGI
import NIOCore
import NIOHTTP1

/// The head of the HTTP request a web server forwarded, rebuilt from its FastCGI
/// params as Vapor's own HTTP server would have parsed it from the wire.
struct VaporRequestHead {
    var method: HTTPMethod
    /// The path and query as the client sent them (percent-encoded).
    var uri: String
    var version: HTTPVersion
    var headers: HTTPHeaders
    /// The client, from `REMOTE_ADDR` and `REMOTE_PORT`.
    var remoteAddress: SocketAddress?

    /// Nil when `REQUEST_METHOD` is not an HTTP token (RFC 9110 §5.6.2).
    init?(_ environ: CGIEnvironment) {
        let method = environ["REQUEST_METHOD"] ?? "GET"
        guard !method.isEmpty, method.utf8.allSatisfy(Self.isTokenByte) else { return nil }
        self.method = HTTPMethod(rawValue: method)
        uri = Self.uri(environ)
        version = Self.version(environ["SERVER_PROTOCOL"])
        headers = HTTPHeaders()
        for (name, value) in environ {
            guard let header = Self.headerName(forParam: name) else { continue }
            if value.isEmpty && !name.hasPrefix("HTTP_") { continue }  // nginx sends CONTENT_TYPE "" on a GET
            headers.add(name: header, value: value)
        }
        remoteAddress = Self.remoteAddress(environ)
    }

    /// The header a param carries: `HTTP_ACCEPT_LANGUAGE` is `Accept-Language`
    /// (RFC 3875 §4.1.18); `CONTENT_TYPE` and `CONTENT_LENGTH` are `Content-Type`
    /// and `Content-Length`.
    static func headerName(forParam name: String) -> String? {
        switch name {
        case "CONTENT_TYPE": return "Content-Type"
        case "CONTENT_LENGTH": return "Content-Length"
        default:
            guard name.hasPrefix("HTTP_"), name.count > 5 else { return nil }
            return name.dropFirst(5).split(separator: "_", omittingEmptySubsequences: false)
                .map { $0.prefix(1) + $0.dropFirst().lowercased() }
                .joined(separator: "-")
        }
    }

    /// `REQUEST_URI` (the path and query of the request line), else the path
    /// rebuilt from `SCRIPT_NAME`, `PATH_INFO` and `QUERY_STRING`.
    private static func uri(_ environ: CGIEnvironment) -> String {
        if let uri = environ["REQUEST_URI"], !uri.isEmpty { return uri }
        let path = (environ["SCRIPT_NAME"] ?? "") + (environ["PATH_INFO"] ?? "")
        let query = environ["QUERY_STRING"] ?? ""
        return (path.isEmpty ? "/" : path) + (query.isEmpty ? "" : "?\(query)")
    }

    /// `HTTP/1.0`, `HTTP/1.1`, `HTTP/2.0` (or `HTTP/2`); 1.1 when absent or unreadable.
    private static func version(_ serverProtocol: String?) -> HTTPVersion {
        guard let serverProtocol, serverProtocol.hasPrefix("HTTP/") else { return .http1_1 }
        let numbers = serverProtocol.dropFirst(5).split(separator: ".", maxSplits: 1)
        guard let major = numbers.first.flatMap({ Int($0) }) else { return .http1_1 }
        let minor = numbers.count > 1 ? Int(numbers[1]) ?? 0 : 0
        return HTTPVersion(major: major, minor: minor)
    }

    /// The client's address (port 0 when the web server sent none); nil when
    /// `REMOTE_ADDR` is not an IP address.
    private static func remoteAddress(_ environ: CGIEnvironment) -> SocketAddress? {
        guard let address = environ["REMOTE_ADDR"], !address.isEmpty else { return nil }
        let port = environ["REMOTE_PORT"].flatMap { Int($0) } ?? 0
        return try? SocketAddress(ipAddress: address, port: port)
    }

    /// A `tchar` of RFC 9110 §5.6.2.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
