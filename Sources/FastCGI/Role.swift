import FastCGIWire

/// The role a request asks the application to play: `.responder`, `.authorizer`
/// or `.filter` (FastCGI role numbers 1, 2, 3).
public typealias Role = FastCGIWire.Role

/// Where a server listens: `host:port`, `:port`, `[v6]:port` or `unix:/path`.
public typealias ListenAddress = FastCGIWire.Endpoint

/// Bounds on each connection: see ``FastCGIWire/ConnectionLimits``.
public typealias ConnectionLimits = FastCGIWire.ConnectionLimits
