import FastCGIWire

/// What `Server.respond(to:)` got back: the status, headers and body a web
/// server would make of the handler's output, and what it wrote to its error stream.
public struct TestResponse: Sendable {
    /// The response as written (`FCGI_STDOUT`): headers, a blank line, the body.
    public let stdout: [UInt8]
    /// What the request wrote to its error stream (`FCGI_STDERR`), tracebacks included.
    public let stderr: [UInt8]
    private let parsed: CGIResponse

    init(stdout: [UInt8], stderr: [UInt8]) {
        self.stdout = stdout
        self.stderr = stderr
        parsed = CGIResponse(parsing: stdout)
    }

    /// The HTTP status: from the `Status` header, else 302 with a `Location`,
    /// else 200. Compares with a code or a name: `status == 404`,
    /// `status == .notFound`.
    public var status: HTTPError.Status { HTTPError.Status(parsed.status) }
    /// The response headers in order (`Status` among them when the handler set it).
    public var headers: [HeaderField] { parsed.fields.map { HeaderField(name: $0.name, value: $0.value) } }
    /// The first header named `name`, compared without case.
    public func header(_ name: String) -> String? { parsed.header(name) }
    /// The body bytes.
    public var body: [UInt8] { parsed.body }
    /// The body decoded as UTF-8.
    public var text: String { String(decoding: parsed.body, as: UTF8.self) }
}
