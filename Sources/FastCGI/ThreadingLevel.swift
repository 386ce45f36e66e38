/// How the server uses threads (the original module's `threading_level`).
///
/// Write it as a number, as in the original: `threadingLevel: 0`.
public enum ThreadingLevel: Int, Sendable, CaseIterable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    /// Level 0: one request at a time, on one handler thread (handlers need not be
    /// thread-safe). Connections are still read by the server's own threads, so an
    /// idle kept connection does not block the next one; `FCGI_MAX_CONNS` is 1.
    case single = 0
    /// Level 1: one OS thread per connection being served (a worker); connections
    /// served at the same time, no multiplexing on a connection. An idle
    /// connection holds no thread.
    case perConnection = 1
    /// Level 2: one OS thread per connection being served and one per request;
    /// requests multiplexed on a connection.
    case multiplexed = 2

    /// Creates a level from 0, 1 or 2.
    public init(integerLiteral value: Int) {
        guard let level = ThreadingLevel(rawValue: value) else {
            preconditionFailure("threading level must be 0, 1 or 2, not \(value)")
        }
        self = level
    }

    public var description: String { "threading level \(rawValue)" }
}
