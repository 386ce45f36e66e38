/// A block of name-value pairs kept as received: one byte array and the offsets
/// of each name and value, so a request's params cost two allocations, not two
/// per param.
public struct NameValueBlock: Hashable, Sendable {
    /// The encoded block (spec §3.4), as received or built.
    public private(set) var bytes: [UInt8]
    /// Per pair: name start, value start, value end (the name ends where the value starts).
    private var offsets: [Int]
    /// Two bits per name present (a Bloom filter over its length and a few bytes):
    /// most lookups of an absent name — a handler probing optional params — end
    /// without scanning the pairs.
    private var filter: NameFilter

    /// An empty block.
    public init() {
        bytes = []
        offsets = []
        filter = NameFilter()
    }

    /// Validates `bytes` and indexes its pairs. Throws ``NameValueError`` on
    /// truncation or a name or value longer than `maxLength`.
    public init(validating bytes: [UInt8], maxLength: Int = Int(Int32.max)) throws(NameValueError) {
        var offsets: [Int] = []
        var filter = NameFilter()
        // Three offsets per pair; a web server sends 20 to 40 params.
        offsets.reserveCapacity(Swift.min(bytes.count / 2, 40) * 3)
        try bytes.withUnsafeBufferPointer { (block) throws(NameValueError) in
            var i = 0
            let end = block.count
            func length() throws(NameValueError) -> Int {
                guard i < end else { throw .truncated }
                let b0 = block[i]
                i += 1
                if b0 & 0x80 == 0 { return Int(b0) }
                guard end - i >= 3 else { throw .truncated }
                let value = Int(b0 & 0x7f) << 24 | Int(block[i]) << 16 | Int(block[i + 1]) << 8 | Int(block[i + 2])
                i += 3
                return value
            }
            while i < end {
                let nameLength = try length()
                let valueLength = try length()
                // Name first, then value: each too long, else truncated.
                if nameLength > maxLength { throw .tooLong(length: nameLength, limit: maxLength) }
                guard end - i >= nameLength else { throw .truncated }
                if valueLength > maxLength { throw .tooLong(length: valueLength, limit: maxLength) }
                guard end - i - nameLength >= valueLength else { throw .truncated }
                offsets.append(i)
                offsets.append(i + nameLength)
                offsets.append(i + nameLength + valueLength)
                filter.insert(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: block[i..<i + nameLength])))
                i += nameLength + valueLength
            }
        }
        self.bytes = bytes
        self.offsets = offsets
        self.filter = filter
    }

    /// A block encoding `pairs`.
    public init(_ pairs: [NameValuePair]) {
        self.init()
        for pair in pairs {
            pair.name.withUnsafeBytes { name in pair.value.withUnsafeBytes { value in append(name: name, value: value) } }
        }
    }

    /// Appends one pair.
    package mutating func append(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        NameValueCoding.encodeLength(name.count, into: &bytes)
        NameValueCoding.encodeLength(value.count, into: &bytes)
        offsets.append(bytes.count)
        bytes.append(contentsOf: name)
        offsets.append(bytes.count)
        bytes.append(contentsOf: value)
        offsets.append(bytes.count)
        filter.insert(name)
    }

    /// Appends every pair of `other`.
    public mutating func append(contentsOf other: NameValueBlock) {
        let shift = bytes.count
        bytes.append(contentsOf: other.bytes)
        offsets.reserveCapacity(offsets.count + other.offsets.count)
        for offset in other.offsets { offsets.append(offset + shift) }
        filter.formUnion(other.filter)
    }

    /// Reserves room for `byteCount` bytes and `pairCount` pairs.
    public mutating func reserveCapacity(bytes byteCount: Int, pairs pairCount: Int) {
        bytes.reserveCapacity(byteCount)
        offsets.reserveCapacity(3 * pairCount)
    }

    /// Number of pairs.
    public var count: Int { offsets.count / 3 }

    /// The name of pair `index`.
    public func name(at index: Int) -> ArraySlice<UInt8> { bytes[offsets[3 * index]..<offsets[3 * index + 1]] }

    /// The value of pair `index`.
    public func value(at index: Int) -> ArraySlice<UInt8> { bytes[offsets[3 * index + 1]..<offsets[3 * index + 2]] }

    /// Whether some pair's name starts with `prefix` (compared as bytes).
    package func containsName(withPrefix prefix: UnsafeRawBufferPointer) -> Bool {
        guard let first = prefix.first else { return count > 0 }
        return bytes.withUnsafeBytes { block in
            offsets.withUnsafeBufferPointer { offsets in
                var index = 0
                while index + 1 < offsets.count {
                    let start = offsets[index]
                    // The first byte alone turns most names away.
                    if offsets[index + 1] > start && block[start] == first && offsets[index + 1] - start >= prefix.count
                        && memcmpBytes(block.baseAddress! + start, prefix.baseAddress!, prefix.count)
                    {
                        return true
                    }
                    index += 3
                }
                return false
            }
        }
    }

    /// The value of the first pair named `name`, or nil.
    package func firstValue(named name: String) -> ArraySlice<UInt8>? {
        var name = name
        return name.withUTF8 { utf8 in firstIndex(of: UnsafeRawBufferPointer(utf8)).map { value(at: $0) } }
    }

    /// The index of the first pair named `name` (compared as bytes), or nil.
    package func firstIndex(of name: UnsafeRawBufferPointer) -> Int? {
        guard filter.mayContain(name) else { return nil }
        return bytes.withUnsafeBytes { block in
            offsets.withUnsafeBufferPointer { offsets in
                firstIndex(of: name, in: block, offsets: offsets)
            }
        }
    }

    private func firstIndex(
        of name: UnsafeRawBufferPointer, in block: UnsafeRawBufferPointer, offsets: UnsafeBufferPointer<Int>
    ) -> Int? {
        var index = 0
        while index + 1 < offsets.count {
            let start = offsets[index]
            let length = offsets[index + 1] - start
            if length == name.count && (length == 0 || memcmpBytes(block.baseAddress! + start, name.baseAddress!, length)) {
                return index / 3
            }
            index += 3
        }
        return nil
    }

    /// The pairs as separate arrays (allocates; for tests and tools).
    public var pairs: [NameValuePair] {
        (0..<count).map { NameValuePair(name: Array(name(at: $0)), value: Array(value(at: $0))) }
    }

    public static func == (a: NameValueBlock, b: NameValueBlock) -> Bool { a.bytes == b.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
}

/// A 256-bit Bloom filter of names: two bits per name, from its length and its
/// first, second and last bytes (params names differ in those more than in their
/// middles). With the 20 to 40 params of a web server, an absent name passes in
/// one lookup in thirty to one in ten (then the scan answers). (With 128 bits it
/// was one in twelve to one in five, and three of the echo app's twelve probes
/// scanned nginx's params in vain on every request.)
struct NameFilter: Sendable {
    private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    private static func bits(_ name: UnsafeRawBufferPointer) -> (UInt32, UInt32) {
        let count = name.count
        var hash = UInt32(truncatingIfNeeded: count) &* 0x9E37_79B1
        if count > 0 {
            hash ^= UInt32(name[0]) &* 0x85EB_CA6B
            hash ^= UInt32(name[count - 1]) &* 0xC2B2_AE35
            if count > 1 { hash ^= UInt32(name[1]) &* 0x27D4_EB2F }
        }
        hash ^= hash >> 15
        hash = hash &* 0x2C1B_3C6D
        hash ^= hash >> 13
        return (hash & 255, (hash >> 8) & 255)
    }

    private mutating func set(_ bit: UInt32) {
        let mask: UInt64 = 1 << UInt64(bit & 63)
        switch bit >> 6 {
        case 0: words.0 |= mask
        case 1: words.1 |= mask
        case 2: words.2 |= mask
        default: words.3 |= mask
        }
    }

    private func test(_ bit: UInt32) -> Bool {
        let word =
            switch bit >> 6 {
            case 0: words.0
            case 1: words.1
            case 2: words.2
            default: words.3
            }
        return word >> UInt64(bit & 63) & 1 != 0
    }

    mutating func insert(_ name: UnsafeRawBufferPointer) {
        let (a, b) = Self.bits(name)
        set(a)
        set(b)
    }

    mutating func formUnion(_ other: NameFilter) {
        words.0 |= other.words.0
        words.1 |= other.words.1
        words.2 |= other.words.2
        words.3 |= other.words.3
    }

    /// False only if no name inserted equals `name`.
    func mayContain(_ name: UnsafeRawBufferPointer) -> Bool {
        let (a, b) = Self.bits(name)
        return test(a) && test(b)
    }
}

/// Byte comparison without Foundation or C.
@inline(__always)
private func memcmpBytes(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
    var i = 0
    while i + 8 <= count {
        if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) {
            return false
        }
        i += 8
    }
    while i < count {
        if a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) { return false }
        i += 1
    }
    return true
}
