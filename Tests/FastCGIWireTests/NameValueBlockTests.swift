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
}
