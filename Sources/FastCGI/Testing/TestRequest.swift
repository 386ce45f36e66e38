import FastCGIWire

/// A request for `Server.respond(to:)`: what a web server would send, built from
/// a method, a URI, headers and a body, with the params nginx's `fastcgi_params`
/// sets. For an app's unit tests: no socket, no thread, no client.
///
/// ```swift
/// let server = Server(handlers: [.responder: Greeter.self])
/// let response = server.respond(to: TestRequest("GET", "/hello?name=Zoë"))
/// assert(response.status == 200 && response.text == "Hello, Zoë!\n")
/// ```
public struct TestRequest: Sendable {
    /// The role asked for (a responder unless set).
    public var role: Role
    /// The params the handler sees, by name; ``init(_:_:headers:body:params:role:data:)``
    /// fills them, and any can be changed before the request is run.
    public var params: [String: String]
    /// The body (`FCGI_STDIN`).
    public var body: [UInt8]
    /// The filter role's `FCGI_DATA`.
    public var data: [UInt8]

    /// A request for `method` and `uri` (the path and query, as in the request
    /// line). Each header becomes its `HTTP_*` param (`Content-Type` and
    /// `Content-Length` their CGI names); a body without a `Content-Type` header is
    /// sent as `application/x-www-form-urlencoded`, as a browser's form post is.
    /// `params` are applied last and win.
    public init(
        _ method: String = "GET", _ uri: String = "/", headers: KeyValuePairs<String, String> = [:], body: [UInt8] = [],
        params: [String: String] = [:], role: Role = .responder, data: [UInt8] = []
    ) {
        self.role = role
        self.body = body
        self.data = data
        let query = uri.firstIndex(of: "?")
        let rawPath = String(uri[..<(query ?? uri.endIndex)])
        let path = PercentCoding.decode(Array(rawPath.utf8)[...]).map { String(decoding: $0, as: UTF8.self) } ?? rawPath
        var all: [String: String] = [
            "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_SOFTWARE": "swift-fcgi-test", "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_SCHEME": "http", "SERVER_NAME": "localhost", "SERVER_ADDR": "127.0.0.1", "SERVER_PORT": "80",
            "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000", "HTTP_HOST": "localhost",
            "REQUEST_METHOD": method, "REQUEST_URI": uri, "DOCUMENT_URI": path, "SCRIPT_NAME": path,
            "QUERY_STRING": query.map { String(uri[uri.index(after: $0)...]) } ?? "",
            "CONTENT_TYPE": "", "CONTENT_LENGTH": body.isEmpty ? "" : String(body.count),
        ]
        if !body.isEmpty { all["CONTENT_TYPE"] = "application/x-www-form-urlencoded" }
        self.params = all
        for (name, value) in headers { addHeader(name, value) }
        self.params.merge(params) { _, given in given }
    }

    /// Adds header `name` (its `HTTP_*` param, or `CONTENT_TYPE` /
    /// `CONTENT_LENGTH`), replacing the default (`Host: localhost`); a second
    /// value for a header added before is joined to the first with `, `
    /// (`; ` for `Cookie`), as a web server forwards repeated headers.
    public mutating func addHeader(_ name: String, _ value: String) {
        let param = Self.paramName(forHeader: name)
        if headerParams.contains(param), let first = params[param], param.hasPrefix("HTTP_") {
            params[param] = first + (param == "HTTP_COOKIE" ? "; " : ", ") + value
        } else {
            params[param] = value
        }
        headerParams.insert(param)
    }

    /// The params set by ``addHeader(_:_:)`` so far.
    private var headerParams: Set<String> = []

    /// The CGI param that carries HTTP header `name` (RFC 3875 §4.1.18).
    static func paramName(forHeader name: String) -> String {
        let upper = String(name.uppercased().map { $0 == "-" ? "_" : $0 })
        return upper == "CONTENT_TYPE" || upper == "CONTENT_LENGTH" ? upper : "HTTP_" + upper
    }
}
