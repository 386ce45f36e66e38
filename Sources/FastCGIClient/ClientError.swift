import FastCGIWire

/// A FastCGI exchange failed on the client side.
public struct ClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure, for code that reacts to it.
    public enum Kind: Hashable, Sendable {
        /// The address could not be parsed or resolved.
        case badAddress
        /// Nothing accepted the connection.
        case connectionRefused
        /// The application closed the connection before the reply ended.
        case connectionClosed
        /// The application did not answer within the timeout.
        case timeout
        /// The application sent bytes that are not valid FastCGI.
        case protocolViolation
        /// Another system call failed.
        case io
    }

    /// The kind of failure.
    public var kind: Kind
    /// A readable explanation with context.
    public var reason: String

    /// Creates an error.
    public init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    public var description: String { reason }
}
