/// Why the machine refused a request without running it
/// (``ConnectionAction/refused(requestID:reason:)``); its END_REQUEST was sent.
public enum RefusalReason: Hashable, Sendable, CustomStringConvertible {
    /// `FCGI_UNKNOWN_ROLE`: no handler for the role.
    case unknownRole(UInt16)
    /// `FCGI_CANT_MPX_CONN`: another request's input is still arriving (levels 0/1).
    case cannotMultiplex
    /// `FCGI_OVERLOADED`: ``ConnectionLimits/maxRequestsPerConnection`` in flight.
    case overloaded(limit: Int)

    public var description: String {
        switch self {
        case .unknownRole(let role): "FCGI_UNKNOWN_ROLE: role \(role) has no handler"
        case .cannotMultiplex: "FCGI_CANT_MPX_CONN: another request's input is still arriving"
        case .overloaded(let limit): "FCGI_OVERLOADED: \(limit) requests already active on this connection"
        }
    }
}
