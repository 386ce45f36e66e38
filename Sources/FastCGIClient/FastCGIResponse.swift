import FastCGIWire

/// The reply to one request: what the application wrote and how it ended.
public struct FastCGIResponse: Sendable, Hashable {
    /// The request id the reply belongs to.
    public var requestID: UInt16
    /// Everything sent on `FCGI_STDOUT` (CGI headers, blank line, body).
    public var stdout: [UInt8] = []
    /// Everything sent on `FCGI_STDERR`.
    public var stderr: [UInt8] = []
    /// The application status from `FCGI_END_REQUEST`.
    public var appStatus: UInt32 = 0
    /// The protocol status from `FCGI_END_REQUEST`.
    public var protocolStatus: ProtocolStatus = .requestComplete
    /// Every record received for this request, in order (for byte-level checks).
    public var records: [Record] = []

    /// Creates an empty response for `requestID`.
    public init(requestID: UInt16) { self.requestID = requestID }

    /// The CGI header lines of stdout, split at the first blank line.
    public var headers: [CGIResponse.Field] { CGIResponse(parsing: stdout).fields }

    /// The first header named `name` (compared without case).
    public func header(_ name: String) -> String? { CGIResponse(parsing: stdout).header(name) }

    /// The body: stdout after the blank line that ends the headers.
    public var body: [UInt8] { CGIResponse(parsing: stdout).body }
}

/// A request to send.
public struct FastCGIRequest: Sendable {
    /// The request id (1 unless multiplexing).
    public var requestID: UInt16 = 1
    /// The role.
    public var role: Role = .responder
    /// The params, in order.
    public var params: [NameValuePair] = []
    /// The body.
    public var stdin: [UInt8] = []
    /// The filter role's data stream.
    public var data: [UInt8]? = nil
    /// Whether to set `FCGI_KEEP_CONN`.
    public var keepConnection = false

    /// Creates a request.
    public init(
        requestID: UInt16 = 1, role: Role = .responder, params: [NameValuePair] = [], stdin: [UInt8] = [],
        data: [UInt8]? = nil, keepConnection: Bool = false
    ) {
        self.requestID = requestID
        self.role = role
        self.params = params
        self.stdin = stdin
        self.data = data
        self.keepConnection = keepConnection
    }

    /// The request's records as bytes: BEGIN_REQUEST, PARAMS, STDIN (and DATA).
    public var encoded: [UInt8] {
        var out = Record.beginRequest(requestID: requestID, role: role, keepConnection: keepConnection).encoded
        StreamWriter.appendParams(params, requestID: requestID, into: &out)
        StreamWriter.append(stdin, type: .stdin, requestID: requestID, close: true, into: &out)
        if let data { StreamWriter.append(data, type: .data, requestID: requestID, close: true, into: &out) }
        return out
    }
}
