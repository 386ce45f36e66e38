import FastCGIWire

// The wire types the client's API speaks, reachable with `import FastCGIClient`
// alone (a tool or test need not import FastCGIWire to build a request).

/// A param or `FCGI_GET_VALUES` pair: see ``FastCGIWire/NameValuePair``.
public typealias NameValuePair = FastCGIWire.NameValuePair
/// The role a request asks for: see ``FastCGIWire/Role``.
public typealias Role = FastCGIWire.Role
/// How `FCGI_END_REQUEST` says the request ended: see ``FastCGIWire/ProtocolStatus``.
public typealias ProtocolStatus = FastCGIWire.ProtocolStatus
/// One FastCGI record: see ``FastCGIWire/Record``.
public typealias Record = FastCGIWire.Record
/// A record's type: see ``FastCGIWire/RecordType``.
public typealias RecordType = FastCGIWire.RecordType
