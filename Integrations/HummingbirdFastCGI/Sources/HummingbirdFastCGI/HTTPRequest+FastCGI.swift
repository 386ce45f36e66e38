import FastCGI
import HTTPTypes

extension HTTPRequest {
    /// The HTTP request head a web server forwarded, rebuilt from its FastCGI
    /// params: the method; the scheme (`REQUEST_SCHEME`, else `HTTPS`); the
    /// authority (`HTTP_HOST`, else `SERVER_NAME` and `SERVER_PORT`); the path and
    /// query as the client sent them (`REQUEST_URI`, else `SCRIPT_NAME`,
    /// `PATH_INFO` and `QUERY_STRING`); and a header field for each `HTTP_*`
    /// param, `CONTENT_TYPE` and `CONTENT_LENGTH`. Nil when the method is not a
    /// valid HTTP token.
    public init?(fastCGI environ: CGIEnvironment) {
        guard let method = Method(environ["REQUEST_METHOD"] ?? "GET") else { return nil }
        var fields = HTTPFields()
        for (name, value) in environ {
            guard let fieldName = Self.headerName(forParam: name) else { continue }
            if value.isEmpty && !name.hasPrefix("HTTP_") { continue }  // nginx sends CONTENT_TYPE "" on a GET
            fields.append(HTTPField(name: fieldName, value: value))
        }
        self.init(
            method: method, scheme: Self.scheme(environ), authority: Self.authority(environ),
            path: Self.path(environ), headerFields: fields)
    }

    /// The header a param carries: `HTTP_ACCEPT_LANGUAGE` is `accept-language`
    /// (RFC 3875 §4.1.18); `CONTENT_TYPE` and `CONTENT_LENGTH` when not empty.
    static func headerName(forParam name: String) -> HTTPField.Name? {
        switch name {
        case "CONTENT_TYPE": return .contentType
        case "CONTENT_LENGTH": return .contentLength
        default:
            guard name.hasPrefix("HTTP_"), name.count > 5 else { return nil }
            let header = name.dropFirst(5).lowercased().replacing("_", with: "-")
            return HTTPField.Name(header)
        }
    }

    private static func scheme(_ environ: CGIEnvironment) -> String {
        if let scheme = environ["REQUEST_SCHEME"], !scheme.isEmpty { return scheme.lowercased() }
        let https = environ["HTTPS"]?.lowercased()
        return https == "on" || https == "1" ? "https" : "http"
    }

    private static func authority(_ environ: CGIEnvironment) -> String? {
        if let host = environ["HTTP_HOST"], !host.isEmpty { return host }
        guard let name = environ["SERVER_NAME"], !name.isEmpty else { return nil }
        guard let port = environ["SERVER_PORT"], !port.isEmpty, port != (scheme(environ) == "https" ? "443" : "80")
        else { return name }
        return "\(name):\(port)"
    }

    private static func path(_ environ: CGIEnvironment) -> String {
        if let uri = environ["REQUEST_URI"], !uri.isEmpty { return uri }
        let path = (environ["SCRIPT_NAME"] ?? "") + (environ["PATH_INFO"] ?? "")
        let query = environ["QUERY_STRING"] ?? ""
        return (path.isEmpty ? "/" : path) + (query.isEmpty ? "" : "?\(query)")
    }
}
