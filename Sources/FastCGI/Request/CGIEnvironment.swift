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
public struct CGIEnvironment: Sendable, Sequence {
    /// `FCGI_ROLE` for a request's environment (one shared block per role), else nil.
    private let head: NameValueBlock?
    /// The params as received.
    private let params: NameValueBlock

    /// The params as one block (with `FCGI_ROLE` first for a request's environment).
    public var block: NameValueBlock {
        guard var whole = head else { return params }
        whole.append(contentsOf: params)
        return whole
    }

    /// Creates an environment over a block of params.
    public init(block: NameValueBlock) {
        head = nil
        params = block
    }

    /// The environment of a request as libfcgi presents it: `FCGI_ROLE` first, then
    /// the params in arrival order, over the block the protocol firewall validated
    /// (not copied), so it is the same at every level.
    init(request start: RequestStart) {
        head =
            switch start.role {
            case .responder: Self.responder
            case .authorizer: Self.authorizer
            case .filter: Self.filter
            }
        params = start.paramsBlock
    }

    private static let responder = roleBlock("RESPONDER")
    private static let authorizer = roleBlock("AUTHORIZER")
    private static let filter = roleBlock("FILTER")

    private static let roleNameLength = "FCGI_ROLE".utf8.count

    private static func roleBlock(_ role: String) -> NameValueBlock {
        NameValueBlock([NameValuePair(name: Array("FCGI_ROLE".utf8), value: Array(role.utf8))])
    }

    /// Creates an environment from byte pairs.
    public init(pairs: [(name: [UInt8], value: [UInt8])]) {
        self.init(block: NameValueBlock(pairs.map { NameValuePair(name: $0.name, value: $0.value) }))
    }

    /// Creates an environment from strings (tests, CGI).
    public init(_ dictionary: [String: String]) {
        self.init(pairs: dictionary.sorted { $0.key < $1.key }.map { (Array($0.key.utf8), Array($0.value.utf8)) })
    }

    private var headCount: Int { head?.count ?? 0 }

    private func name(at index: Int) -> ArraySlice<UInt8> {
        if let head, index < head.count { return head.name(at: index) }
        return params.name(at: index - headCount)
    }

    private func value(at index: Int) -> ArraySlice<UInt8> {
        if let head, index < head.count { return head.value(at: index) }
        return params.value(at: index - headCount)
    }

    /// The pairs in the order they arrived (allocates a copy of each).
    public var pairs: [(name: [UInt8], value: [UInt8])] {
        (0..<count).map { (Array(name(at: $0)), Array(value(at: $0))) }
    }

    private func index(of name: String) -> Int? {
        var name = name
        return name.withUTF8 { utf8 in
            let name = UnsafeRawBufferPointer(utf8)
            guard let head else { return params.firstIndex(of: name) }
            // The head holds FCGI_ROLE alone: other names skip it.
            if name.count == Self.roleNameLength, let index = head.firstIndex(of: name) { return index }
            return params.firstIndex(of: name).map { $0 + head.count }
        }
    }

    /// The raw bytes of the value named `name`, or nil if absent.
    public func bytes(_ name: String) -> [UInt8]? {
        index(of: name).map { Array(value(at: $0)) }
    }

    /// The value named `name` as a string, or nil if absent.
    public subscript(name: String) -> String? {
        index(of: name).map { CGIEnvironment.decode(value(at: $0)) }
    }

    /// Whether a param named `name` is present.
    public func contains(_ name: String) -> Bool { index(of: name) != nil }

    /// Whether the param named `name` has the value `expected` (compared as
    /// bytes, in place: no string is made).
    func value(of name: String, is expected: StaticString) -> Bool {
        guard let index = index(of: name) else { return false }
        let value = value(at: index)
        guard value.count == expected.utf8CodeUnitCount else { return false }
        return value.withUnsafeBufferPointer { bytes in
            bytes.elementsEqual(UnsafeBufferPointer(start: expected.utf8Start, count: expected.utf8CodeUnitCount))
        }
    }

    /// Whether some param's name starts with `prefix` (`"HTTP_X_"`: any custom
    /// request header): one pass over the names, instead of a lookup for each
    /// of several names that are usually absent.
    public func containsName(withPrefix prefix: String) -> Bool {
        var prefix = prefix
        return prefix.withUTF8 { utf8 in
            let prefix = UnsafeRawBufferPointer(utf8)
            return (head?.containsName(withPrefix: prefix) ?? false) || params.containsName(withPrefix: prefix)
        }
    }

    /// Number of params.
    public var count: Int { headCount + params.count }

    /// Every param as strings (decoded as by ``subscript(_:)``). Of a name sent
    /// twice the first value wins, as in every lookup here and as libfcgi's
    /// `FCGX_GetParam` answers (docs/DEVIATIONS.md, "duplicate params").
    public var dictionary: [String: String] {
        var result: [String: String] = [:]
        for i in 0..<count {
            let name = CGIEnvironment.decode(name(at: i))
            if result[name] == nil { result[name] = CGIEnvironment.decode(value(at: i)) }
        }
        return result
    }

    /// Iterates over `(name, value)` string pairs in arrival order.
    public func makeIterator() -> some IteratorProtocol<(name: String, value: String)> {
        (0..<count).lazy.map { [self] in (CGIEnvironment.decode(name(at: $0)), CGIEnvironment.decode(value(at: $0))) }
            .makeIterator()
    }

    /// UTF-8 if valid, else ISO-8859-1 (lossless: one character per byte).
    static func decode(_ bytes: some Collection<UInt8>) -> String { String(losslessBytes: bytes) }
}
