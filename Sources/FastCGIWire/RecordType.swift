/// The type byte of a FastCGI record (FastCGI 1.0 spec §8).
///
/// Unknown values are representable on purpose: a peer may send any byte, and the
/// protocol requires an `FCGI_UNKNOWN_TYPE` answer for management types we do not
/// know (spec §4.2), so decoding must not fail on them.
public struct RecordType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8

    /// Creates a record type from its wire value.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// `FCGI_BEGIN_REQUEST` (1): starts a request (spec §5.1).
    public static let beginRequest = RecordType(rawValue: 1)
    /// `FCGI_ABORT_REQUEST` (2): the web server aborts a request (spec §5.4).
    public static let abortRequest = RecordType(rawValue: 2)
    /// `FCGI_END_REQUEST` (3): the application ends a request (spec §5.5).
    public static let endRequest = RecordType(rawValue: 3)
    /// `FCGI_PARAMS` (4): the request's name-value pairs (spec §5.2).
    public static let params = RecordType(rawValue: 4)
    /// `FCGI_STDIN` (5): the request body (spec §5.3).
    public static let stdin = RecordType(rawValue: 5)
    /// `FCGI_STDOUT` (6): the response (spec §5.3).
    public static let stdout = RecordType(rawValue: 6)
    /// `FCGI_STDERR` (7): the application's error stream (spec §5.3).
    public static let stderr = RecordType(rawValue: 7)
    /// `FCGI_DATA` (8): the filter role's second input stream (spec §6.4).
    public static let data = RecordType(rawValue: 8)
    /// `FCGI_GET_VALUES` (9): management query (spec §4.1).
    public static let getValues = RecordType(rawValue: 9)
    /// `FCGI_GET_VALUES_RESULT` (10): answer to a query (spec §4.1).
    public static let getValuesResult = RecordType(rawValue: 10)
    /// `FCGI_UNKNOWN_TYPE` (11): answer to an unknown management record (spec §4.2).
    public static let unknownType = RecordType(rawValue: 11)

    /// Whether the type is one of the eleven defined by FastCGI 1.0.
    public var isKnown: Bool { (1...11).contains(rawValue) }

    public var description: String {
        switch rawValue {
        case 1: "BEGIN_REQUEST"
        case 2: "ABORT_REQUEST"
        case 3: "END_REQUEST"
        case 4: "PARAMS"
        case 5: "STDIN"
        case 6: "STDOUT"
        case 7: "STDERR"
        case 8: "DATA"
        case 9: "GET_VALUES"
        case 10: "GET_VALUES_RESULT"
        case 11: "UNKNOWN_TYPE"
        default: "type \(rawValue)"
        }
    }
}

/// The role a request asks the application to play (spec §6).
public enum Role: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    /// `FCGI_RESPONDER` (1): the CGI/1.1 role: produce a response (spec §6.2).
    case responder = 1
    /// `FCGI_AUTHORIZER` (2): decide whether a request is allowed (spec §6.3).
    case authorizer = 2
    /// `FCGI_FILTER` (3): transform the `FCGI_DATA` file (spec §6.4).
    case filter = 3

    public var description: String {
        switch self {
        case .responder: "responder"
        case .authorizer: "authorizer"
        case .filter: "filter"
        }
    }
}

/// The protocol status of an `FCGI_END_REQUEST` record (spec §5.5).
public enum ProtocolStatus: UInt8, Sendable, CustomStringConvertible {
    /// `FCGI_REQUEST_COMPLETE`: normal end of request.
    case requestComplete = 0
    /// `FCGI_CANT_MPX_CONN`: a new request on a connection that is busy.
    case cantMultiplexConnection = 1
    /// `FCGI_OVERLOADED`: out of some resource.
    case overloaded = 2
    /// `FCGI_UNKNOWN_ROLE`: the role is not one the application plays.
    case unknownRole = 3

    public var description: String {
        switch self {
        case .requestComplete: "REQUEST_COMPLETE"
        case .cantMultiplexConnection: "CANT_MPX_CONN"
        case .overloaded: "OVERLOADED"
        case .unknownRole: "UNKNOWN_ROLE"
        }
    }
}

/// Well-known constants of the protocol.
public enum WireConstants {
    /// `FCGI_VERSION_1`, the only version defined.
    public static let version: UInt8 = 1
    /// Length of a record header (`FCGI_HEADER_LEN`).
    public static let headerLength = 8
    /// Largest content a single record can carry.
    public static let maxContentLength = 65535
    /// `FCGI_NULL_REQUEST_ID`: management records use request id 0.
    public static let nullRequestID: UInt16 = 0
    /// `FCGI_KEEP_CONN`: the flag bit in `FCGI_BEGIN_REQUEST`.
    public static let keepConnectionFlag: UInt8 = 1
    /// `FCGI_MAX_CONNS` variable name for `FCGI_GET_VALUES`.
    public static let maxConnsName = "FCGI_MAX_CONNS"
    /// `FCGI_MAX_REQS` variable name for `FCGI_GET_VALUES`.
    public static let maxReqsName = "FCGI_MAX_REQS"
    /// `FCGI_MPXS_CONNS` variable name for `FCGI_GET_VALUES`.
    public static let mpxsConnsName = "FCGI_MPXS_CONNS"
}
