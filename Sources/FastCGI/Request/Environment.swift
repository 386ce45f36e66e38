import FastCGIWire

/// The request's params (the CGI environment), as the web server sent them.
///
/// Names and values are bytes on the wire. The `String` accessors decode UTF-8; a
/// value that is not valid UTF-8 (for example a Latin-1 header) is decoded as
/// ISO-8859-1, which maps every byte to one character, so nothing is lost: the
/// exact bytes are always available from ``bytes(_:)``.
///
/// The params are kept as one block of bytes with an index (two allocations per
/// request, whatever the number of params); lookups compare bytes in place.
public struct Environment: Sendable, Sequence {
    /// The params as received.
    public let block: NameValueBlock

    /// Creates an environment over a block of params.
    public init(block: NameValueBlock) {
        self.block = block
    }

    /// The environment of a request as libfcgi presents it: `FCGI_ROLE` first, then
    /// the params in arrival order. Every engine builds it from the block the
    /// protocol firewall validated (one copy), so it is the same at every level.
    init(request start: RequestStart) {
        let roleName: StaticString =
            switch start.role {
            case .responder: "RESPONDER"
            case .authorizer: "AUTHORIZER"
            case .filter: "FILTER"
            }
        let name: StaticString = "FCGI_ROLE"
        var block = NameValueBlock()
        block.reserveCapacity(bytes: start.paramsBlock.bytes.count + 32, pairs: start.paramsBlock.count + 1)
        block.append(
            name: UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount),
            value: UnsafeRawBufferPointer(start: roleName.utf8Start, count: roleName.utf8CodeUnitCount))
        block.append(contentsOf: start.paramsBlock)
        self.init(block: block)
    }

    /// Creates an environment from byte pairs.
    public init(pairs: [(name: [UInt8], value: [UInt8])]) {
        block = NameValueBlock(pairs.map { NameValuePair(name: $0.name, value: $0.value) })
    }

    /// Creates an environment from strings (tests, CGI).
    public init(_ dictionary: [String: String]) {
        self.init(pairs: dictionary.sorted { $0.key < $1.key }.map { (Array($0.key.utf8), Array($0.value.utf8)) })
    }

    /// The pairs in the order they arrived (allocates a copy of each).
    public var pairs: [(name: [UInt8], value: [UInt8])] {
        (0..<block.count).map { (Array(block.name(at: $0)), Array(block.value(at: $0))) }
    }

    private func index(of name: String) -> Int? {
        var name = name
        return name.withUTF8 { block.firstIndex(of: UnsafeRawBufferPointer($0)) }
    }

    /// The raw bytes of the value named `name`, or nil if absent.
    public func bytes(_ name: String) -> [UInt8]? {
        index(of: name).map { Array(block.value(at: $0)) }
    }

    /// The value named `name` as a string, or nil if absent.
    public subscript(name: String) -> String? {
        index(of: name).map { Environment.decode(block.value(at: $0)) }
    }

    /// Whether a param named `name` is present.
    public func contains(_ name: String) -> Bool { index(of: name) != nil }

    /// Number of params.
    public var count: Int { block.count }

    /// Every param as strings (decoded as by ``subscript(_:)``); later duplicates win.
    public var dictionary: [String: String] {
        var result: [String: String] = [:]
        for i in 0..<block.count { result[Environment.decode(block.name(at: i))] = Environment.decode(block.value(at: i)) }
        return result
    }

    /// Iterates over `(name, value)` string pairs in arrival order.
    public func makeIterator() -> some IteratorProtocol<(name: String, value: String)> {
        (0..<block.count).lazy.map { [block] in (Environment.decode(block.name(at: $0)), Environment.decode(block.value(at: $0)))
        }
        .makeIterator()
    }

    /// UTF-8 if valid, else ISO-8859-1 (lossless: one character per byte).
    static func decode(_ bytes: some Collection<UInt8>) -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
    }
}
