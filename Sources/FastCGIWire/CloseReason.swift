/// Why the machine closes a connection (``ConnectionAction/close(reason:)``): a
/// value, so logs, counters and tests match on cases, never on message text.
public enum CloseReason: Hashable, Sendable, CustomStringConvertible {
    /// The peer closed its side, the connection failed, or it idled out.
    case peerClosed
    /// A request without `FCGI_KEEP_CONN` ended (spec §3.4: the application closes).
    case requestEndedWithoutKeepConnection(requestID: UInt16)
    /// A request without `FCGI_KEEP_CONN` was aborted before it started.
    case abortedWithoutKeepConnection(requestID: UInt16)
    /// A request for an unknown role, without `FCGI_KEEP_CONN`, was refused.
    case unknownRoleWithoutKeepConnection(requestID: UInt16, role: UInt16)
    /// The byte stream is not FastCGI (the decoder's error).
    case malformedRecord(WireError)
    /// Records in an order the protocol forbids.
    case outOfSequence(requestID: UInt16, Sequence)
    /// A request's params are not well-formed name-value pairs.
    case malformedParams(requestID: UInt16, NameValueError)
    /// An `FCGI_GET_VALUES` record whose content is not well-formed.
    case malformedGetValues(NameValueError)
    /// A request's params exceed ``ConnectionLimits/maxParamsBytes``.
    case paramsTooLarge(requestID: UInt16, limit: Int)
    /// Pipelined requests exceed ``ConnectionLimits/maxPipelinedBytes``.
    case pipelineTooLarge(limit: Int)

    /// The records out of order.
    public enum Sequence: Hashable, Sendable {
        /// PARAMS after the params stream's end.
        case paramsAfterEnd
        /// A STDIN or DATA record before the params stream's end.
        case streamBeforeParams(RecordType)
        /// A non-empty STDIN or DATA record after that stream's end.
        case streamAfterEnd(RecordType)
        /// BEGIN_REQUEST whose content is not 8 bytes.
        case beginRequestLength(Int)
        /// BEGIN_REQUEST for a request still receiving input.
        case beginRequestForActive
    }

    /// The connection ended as the protocol foresees (the peer left, or a request
    /// without keep-conn ended): not worth a warning.
    public var isOrdinary: Bool {
        switch self {
        case .peerClosed, .requestEndedWithoutKeepConnection, .abortedWithoutKeepConnection,
            .unknownRoleWithoutKeepConnection:
            true
        default: false
        }
    }

    /// A configured limit was hit.
    public var isLimit: Bool {
        switch self {
        case .paramsTooLarge, .pipelineTooLarge, .malformedRecord(.recordTooLong): true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .peerClosed: "peer closed the connection"
        case .requestEndedWithoutKeepConnection(let id): "request \(id) ended without FCGI_KEEP_CONN"
        case .abortedWithoutKeepConnection(let id): "request \(id) aborted without FCGI_KEEP_CONN"
        case .unknownRoleWithoutKeepConnection(let id, let role): "request \(id): unknown role \(role), no FCGI_KEEP_CONN"
        case .malformedRecord(let error): "\(error)"
        case .outOfSequence(let id, .paramsAfterEnd): "request \(id): PARAMS after the params stream ended"
        case .outOfSequence(let id, .streamBeforeParams(let type)): "request \(id): \(type) before the params stream ended"
        case .outOfSequence(let id, .streamAfterEnd(let type)): "request \(id): \(type) after the end of that stream"
        case .outOfSequence(let id, .beginRequestLength(let count)):
            "request \(id): BEGIN_REQUEST of \(count) bytes (expected 8)"
        case .outOfSequence(let id, .beginRequestForActive): "request \(id): BEGIN_REQUEST for a request already active"
        case .malformedParams(let id, let error): "request \(id): malformed params: \(error)"
        case .malformedGetValues(let error): "malformed FCGI_GET_VALUES: \(error)"
        case .paramsTooLarge(let id, let limit): "request \(id): params exceed the \(limit)-byte limit"
        case .pipelineTooLarge(let limit): "pipelined requests exceed the \(limit)-byte limit"
        }
    }
}
