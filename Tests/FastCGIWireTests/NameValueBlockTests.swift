import Testing

@testable import FastCGIWire

@Suite("NameValueBlock: params kept as one block")
struct NameValueBlockTests {
    let pairs = [
        NameValuePair("SCRIPT_NAME", "/x"), NameValuePair("EMPTY", ""), NameValuePair("", "no name"),
        NameValuePair("LONG", String(repeating: "v", count: 300)),
    ]

    @Test("built from pairs, or validated from the encoding: same pairs, same lookups")
    func roundTrip() throws {
        let built = NameValueBlock(pairs)
        let parsed = try NameValueBlock(validating: NameValueCoding.encode(pairs))
        #expect(built == parsed)
        #expect(parsed.pairs == pairs)
        #expect(parsed.count == 4)
        for (index, pair) in pairs.enumerated() {
            let found = pair.name.withUnsafeBytes { parsed.firstIndex(of: $0) }
            #expect(found == index)
            #expect(Array(parsed.value(at: index)) == pair.value)
        }
        #expect(Array("NOPE".utf8).withUnsafeBytes { parsed.firstIndex(of: $0) } == nil)
    }

    @Test("append(contentsOf:) shifts the other block's offsets")
    func appending() throws {
        var block = NameValueBlock()
        Array("FCGI_ROLE".utf8).withUnsafeBytes { name in
            Array("RESPONDER".utf8).withUnsafeBytes { value in block.append(name: name, value: value) }
        }
        block.append(contentsOf: NameValueBlock(pairs))
        #expect(block.pairs == [NameValuePair("FCGI_ROLE", "RESPONDER")] + pairs)
        #expect(Array("LONG".utf8).withUnsafeBytes { block.firstIndex(of: $0) } == 4)
    }

    @Test("truncated or over-long blocks are refused")
    func invalid() {
        #expect(throws: NameValueError.truncated) { try NameValueBlock(validating: [5, 1, 65]) }
        #expect(throws: NameValueError.truncated) { try NameValueBlock(validating: [0x80, 0]) }
        #expect(throws: NameValueError.tooLong(length: 0x7fff_ffff, limit: 100)) {
            try NameValueBlock(validating: [0xFF, 0xFF, 0xFF, 0xFF, 1, 65], maxLength: 100)
        }
    }

    /// The names a web server sends, and names handlers probe for that are absent.
    static let serverNames = [
        "QUERY_STRING", "REQUEST_METHOD", "CONTENT_TYPE", "CONTENT_LENGTH", "SCRIPT_NAME", "REQUEST_URI",
        "DOCUMENT_URI", "DOCUMENT_ROOT", "SERVER_PROTOCOL", "REQUEST_SCHEME", "GATEWAY_INTERFACE", "SERVER_SOFTWARE",
        "REMOTE_ADDR", "REMOTE_PORT", "SERVER_ADDR", "SERVER_PORT", "SERVER_NAME", "REDIRECT_STATUS", "HTTP_HOST",
        "HTTP_USER_AGENT", "HTTP_ACCEPT", "HTTP_ACCEPT_ENCODING", "HTTP_COOKIE", "A", "",
    ]

    @Test("the name filter never hides a present name and rejects most absent ones")
    func nameFilter() throws {
        let block = try NameValueBlock(
            validating: NameValueCoding.encode(Self.serverNames.map { NameValuePair($0, "v") }))
        for (index, name) in Self.serverNames.enumerated() {
            #expect(Array(name.utf8).withUnsafeBytes { block.firstIndex(of: $0) } == index, "\(name)")
        }
        // Absent names: every one answered nil, whatever the filter let through.
        var generator = SystemRandomNumberGenerator()
        var passed = 0
        let probes = 2000
        for i in 0..<probes {
            let length = Int.random(in: 1...24, using: &generator)
            let name = "X\(i)_" + String((0..<length).map { _ in "ABCDEFGHIJKLMNOPQRSTUVWXYZ_".randomElement()! })
            var filter = NameFilter()
            for present in Self.serverNames { Array(present.utf8).withUnsafeBytes { filter.insert($0) } }
            let mayContain = Array(name.utf8).withUnsafeBytes { filter.mayContain($0) }
            if mayContain { passed += 1 }
            #expect(Array(name.utf8).withUnsafeBytes { block.firstIndex(of: $0) } == nil)
        }
        // 25 names in 256 bits, two bits each: about 1 absent name in 30 gets through.
        #expect(passed < probes / 8, "the filter let \(passed) of \(probes) absent names through")
    }

    @Test("append(contentsOf:) and append(name:value:) keep every name findable")
    func filterAfterAppends() {
        var block = NameValueBlock()
        for name in Self.serverNames.prefix(10) {
            Array(name.utf8).withUnsafeBytes { n in Array("1".utf8).withUnsafeBytes { block.append(name: n, value: $0) } }
        }
        block.append(contentsOf: NameValueBlock(Self.serverNames.dropFirst(10).map { NameValuePair($0, "2") }))
        for (index, name) in Self.serverNames.enumerated() {
            #expect(Array(name.utf8).withUnsafeBytes { block.firstIndex(of: $0) } == index, "\(name)")
        }
    }
}
