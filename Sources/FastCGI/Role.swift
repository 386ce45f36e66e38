import FastCGIWire

/// The role a request asks the application to play: `.responder`, `.authorizer`
/// or `.filter` (FastCGI role numbers 1, 2, 3).
public typealias Role = FastCGIWire.Role

/// Where a server listens: `host:port`, `:port`, `[v6]:port` or `unix:/path`.
public typealias ListenAddress = FastCGIWire.Endpoint

/// Bounds on each connection (defined in `FastCGIWire`, whose connection state
/// machine enforces them): the params' size, requests in flight, the number of
/// connections, the idle timeout and the input timeout (`inputTimeout`, 60 s).
public typealias ConnectionLimits = FastCGIWire.ConnectionLimits
