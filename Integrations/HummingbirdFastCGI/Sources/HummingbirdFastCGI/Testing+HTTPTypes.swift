import FastCGI
import HTTPTypes

extension TestRequest {
    /// A request as a web server forwards `head` with `body`: its method, path
    /// and query, header fields (`HTTP_*` params, `CONTENT_TYPE`,
    /// `CONTENT_LENGTH`), authority (`HTTP_HOST`) and scheme (`REQUEST_SCHEME`,
    /// and `HTTPS=on` for https), for `Server.respond(to:)`.
    ///
    /// ```swift
    /// func createsATodo(on server: Server) async {
    ///     let head = HTTPRequest(
    ///         method: .post, scheme: "https", authority: "example.org", path: "/todos",
    ///         headerFields: [.contentType: "application/json"])
    ///     let response = await server.respond(to: TestRequest(head, body: Array(#"{"title":"milk"}"#.utf8)))
    ///     assert(response.head.status == .created)
    /// }
    /// ```
    public init(_ head: HTTPRequest, body: [UInt8] = []) {
        self.init(head.method.rawValue, head.path ?? "/", body: body)
        for field in head.headerFields { addHeader(field.name.canonicalName, field.value) }
        if let authority = head.authority, params["HTTP_HOST"] == "localhost" { params["HTTP_HOST"] = authority }
        if let scheme = head.scheme?.lowercased() {
            params["REQUEST_SCHEME"] = scheme
            if scheme == "https" {
                params["HTTPS"] = "on"
                params["SERVER_PORT"] = "443"
            }
        }
    }
}

extension TestResponse {
    /// The response head as swift-http-types has it: the status (with its
    /// reason phrase) and every header field but the CGI `Status` line.
    public var head: HTTPResponse {
        var fields = HTTPFields()
        for field in headers where field.name.lowercased() != "status" {
            guard let name = HTTPField.Name(field.name) else { continue }
            fields.append(HTTPField(name: name, value: field.value))
        }
        return HTTPResponse(status: HTTPResponse.Status(code: status.code), headerFields: fields)
    }
}
