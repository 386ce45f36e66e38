import FastCGIWire

/// The role a request asks the application to play: `.responder`, `.authorizer`
/// or `.filter` (FastCGI role numbers 1, 2, 3).
public typealias Role = FastCGIWire.Role
