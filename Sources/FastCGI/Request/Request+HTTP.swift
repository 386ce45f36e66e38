import FoundationEssentials

/// Everyday HTTP on top of the original module's API: the method, path and query;
/// a status, a redirect, cookies, JSON and HTML escaping. Each is a small layer
/// over ``Request/environ``, ``Request/setHeader(_:_:)`` and ``Request/write(_:)-(StringProtocol)``,
/// which stay as they are.
///
/// ```swift
/// struct Guestbook: Handler {
///     func process(_ request: Request) throws {
///         switch (request.method, request.path) {
///         case ("GET", "/"), ("HEAD", "/"):
///             let name = request.cookie("name") ?? "stranger"
///             try request.write("<p>Hello, \(Request.escapeHTML(name))!</p>")
///         case ("POST", "/sign"):
///             let name = try request.params["name"]?.string ?? ""
///             try request.setCookie("name", name, maxAge: 86_400)
///             try request.redirect(to: "/")
///         default:
///             throw HTTPError(.notFound)
///         }
///     }
/// }
/// ```
extension Request {
    // MARK: The request line

    /// The request method, uppercased (`REQUEST_METHOD`; `GET` if the web server
    /// sent none). A `HEAD` request is answered without a body whatever the handler
    /// writes (its headers are those of the `GET`),
    /// so route `HEAD` with `GET`.
    public var method: String { (environ["REQUEST_METHOD"] ?? "GET").uppercased() }

    /// The request's path, percent-decoded, without the query: nginx's
    /// `DOCUMENT_URI` (decoded and normalized by nginx), else the CGI
    /// `SCRIPT_NAME` + `PATH_INFO` (decoded by the web server), else the path of
    /// `REQUEST_URI` decoded here. Route on this, not on `REQUEST_URI`, which is
    /// raw: `/upl%6Fad` and `/upload` are the same path.
    public var path: String {
        if let document = environ["DOCUMENT_URI"], !document.isEmpty { return document }
        let script = environ["SCRIPT_NAME"] ?? ""
        let info = environ["PATH_INFO"] ?? ""
        if !script.isEmpty || !info.isEmpty { return script + info }
        let uri = environ.bytes("REQUEST_URI") ?? Array("/".utf8)
        let rawPath = uri.split(separator: UInt8(ascii: "?"), maxSplits: 1, omittingEmptySubsequences: false).first ?? []
        return String(losslessBytes: PercentCoding.decode(rawPath) ?? Array(rawPath))
    }

    /// The path below the app's mount point, decoded: what routes are written
    /// against, so the same routes match whichever web server runs the app.
    ///
    /// | the app behind | URL | `path` | `pathInfo` |
    /// |---|---|---|---|
    /// | nginx, `include fastcgi_params` | `/sign` | `/sign` | `/sign` |
    /// | nginx with `fastcgi_split_path_info` | `/app.fcgi/sign` | `/app.fcgi/sign` | `/sign` |
    /// | Apache mod_fcgid `AddHandler fcgid-script .fcgi`, CGI `ScriptAlias` | `/app.fcgi/sign` | `/app.fcgi/sign` | `/sign` |
    /// | the same, the script itself | `/app.fcgi` | `/app.fcgi` | `/` |
    ///
    /// It is `PATH_INFO` when the web server sent one (Apache puts the script's
    /// own path in `SCRIPT_NAME`, the rest in `PATH_INFO`); `/` for a request
    /// to the script itself (its `SCRIPT_FILENAME` is this program); else
    /// ``path`` (nginx names the whole path in `SCRIPT_NAME`).
    public var pathInfo: String {
        if let info = environ["PATH_INFO"], !info.isEmpty { return info }
        if environ["DOCUMENT_URI"] == nil, let file = environ["SCRIPT_FILENAME"], file.hasPrefix("/"),
            Executable.isThisProgram(file)
        {
            return "/"
        }
        return path
    }

    /// The raw query string (`QUERY_STRING`, without the `?`); its fields are in
    /// ``params``.
    public var query: String { environ["QUERY_STRING"] ?? "" }

    // MARK: Status and redirects

    /// Sets the response status (the `Status` header), e.g. `setStatus(.created)`.
    public func setStatus(_ status: HTTPError.Status) throws {
        try setHeader("Status", "\(status.code) \(status.reason)")
    }

    /// Answers with a redirect to `location` (`303 See Other` by default: after a
    /// POST, the browser fetches `location` with GET). A location holding CR or LF
    /// is refused (``HeaderError``).
    public func redirect(to location: String, status: HTTPError.Status = .seeOther) throws {
        try setHeader("Location", location)
        try setStatus(status)
    }

    // MARK: Cookies

    /// The `SameSite` attribute of a cookie.
    public enum SameSite: String, Sendable {
        /// Sent only with requests from the site itself.
        case strict = "Strict"
        /// Also sent with top-level navigation from other sites (browsers' default).
        case lax = "Lax"
        /// Sent with every request; browsers require `secure` with it.
        case none = "None"
    }

    /// The value of cookie `name`, percent-decoded (the form ``setCookie(_:_:maxAge:path:domain:secure:httpOnly:sameSite:)``
    /// writes); the raw value if it holds a malformed escape. ``cookies`` has the
    /// raw values.
    public func cookie(_ name: String) -> String? {
        guard let raw = cookies[name] else { return nil }
        return CookieParser.decode(raw)
    }

    /// Adds a `Set-Cookie` header. The value is percent-encoded where RFC 6265
    /// does not allow it as is (spaces, `;`, `,`, quotes, non-ASCII), so any
    /// string round-trips through ``cookie(_:)``. `maxAge` 0 deletes the cookie.
    /// Defaults: `Path=/`, `HttpOnly`, `SameSite=Lax`. Throws ``HeaderError`` for a
    /// name that is not a token or a path or domain holding `;` or a control
    /// character.
    public func setCookie(
        _ name: String, _ value: String, maxAge: Int? = nil, path: String? = "/", domain: String? = nil,
        secure: Bool = false, httpOnly: Bool = true, sameSite: SameSite? = .lax
    ) throws {
        var line = "\(name)=\(CookieParser.encode(value))"
        if let maxAge { line += "; Max-Age=\(max(0, maxAge))" }
        for (attribute, text) in [("Domain", domain), ("Path", path)] {
            guard let text else { continue }
            guard !text.utf8.contains(where: { $0 == UInt8(ascii: ";") || $0 < 0x20 || $0 == 0x7F }) else {
                throw HeaderError(name: "Set-Cookie", reason: .invalidCookie)
            }
            line += "; \(attribute)=\(text)"
        }
        if secure { line += "; Secure" }
        if httpOnly { line += "; HttpOnly" }
        if let sameSite { line += "; SameSite=\(sameSite.rawValue)" }
        guard HeaderError.isToken(name) else { throw HeaderError(name: "Set-Cookie", reason: .invalidCookie) }
        try addHeader("Set-Cookie", line)
    }

    // MARK: Bodies

    /// Answers with `value` as JSON (`Content-Type: application/json`), encoded
    /// with `encoder` (a plain `JSONEncoder` by default).
    public func writeJSON<Value: Encodable>(
        _ value: Value, status: HTTPError.Status? = nil, encoder: JSONEncoder = JSONEncoder()
    ) throws {
        let data = try encoder.encode(value)
        if let status { try setStatus(status) }
        try setHeader("Content-Type", "application/json")
        try write(Array(data))
    }

    /// `text` with `&`, `<`, `>`, `"` and `'` escaped, safe inside HTML text and
    /// quoted attributes.
    public static func escapeHTML(_ text: String) -> String { HTML.escape(text) }
}
