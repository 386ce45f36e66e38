/// The response headers of a request: ordered, names compared without case.
struct HeaderList {
    private(set) var fields: [(name: String, value: String)]

    /// A list holding `name: value` alone, with room for a few more (the
    /// default `Content-Type` of every response: no array literal to copy).
    init(_ name: String, _ value: String) {
        fields = []
        fields.reserveCapacity(4)
        fields.append((name, value))
    }

    init(_ fields: [(name: String, value: String)]) {
        // Room for a few more from the start: a response usually gets its
        // Content-Type set and a Content-Length added (one allocation, not three).
        var room: [(name: String, value: String)] = []
        room.reserveCapacity(fields.count + 3)
        room.append(contentsOf: fields)
        self.fields = room
    }

    /// Header names are ASCII tokens: compared byte by byte, ASCII letters without
    /// case (no allocation, unlike `lowercased()`).
    private static func matches(_ a: String, _ b: String) -> Bool {
        let fast: Bool?? = a.utf8.withContiguousStorageIfAvailable { x in
            b.utf8.withContiguousStorageIfAvailable { y in equalIgnoringASCIICase(x, y) }
        }
        if let fast = fast ?? nil { return fast }
        return equalIgnoringASCIICase(a.utf8, b.utf8)
    }

    private static func equalIgnoringASCIICase(_ x: some Collection<UInt8>, _ y: some Collection<UInt8>) -> Bool {
        guard x.count == y.count else { return false }
        return x.elementsEqual(y) { x, y in
            x == y || (x | 0x20 == y | 0x20 && (x | 0x20) >= UInt8(ascii: "a") && (x | 0x20) <= UInt8(ascii: "z"))
        }
    }

    /// Replaces every header named `name` with one `name: value` (at the place of the first).
    mutating func set(_ name: String, _ value: String) {
        if let first = fields.firstIndex(where: { Self.matches($0.name, name) }) {
            fields[first] = (name, value)
            var i = fields.index(after: first)
            while i < fields.endIndex {
                if Self.matches(fields[i].name, name) { fields.remove(at: i) } else { i += 1 }
            }
        } else {
            fields.append((name, value))
        }
    }

    mutating func add(_ name: String, _ value: String) { fields.append((name, value)) }

    func get(_ name: String, index: Int) -> String? {
        var seen = 0
        for field in fields where Self.matches(field.name, name) {
            if seen == index { return field.value }
            seen += 1
        }
        return nil
    }

    mutating func remove(_ name: String) { fields.removeAll { Self.matches($0.name, name) } }

    mutating func removeAll() { fields.removeAll() }

    /// Adds `value` to the comma-separated list in header `name` unless already there
    /// (compared without case); creates the header if absent.
    mutating func appendValue(_ name: String, _ value: String) {
        guard let i = fields.firstIndex(where: { Self.matches($0.name, name) }) else {
            fields.append((name, value))
            return
        }
        let items = fields[i].value.split(separator: ",").map { $0.trimmingSpaces.lowercased() }
        if items.contains(value.lowercased()) { return }
        fields[i].value = fields[i].value.isEmpty ? value : fields[i].value + ", " + value
    }

    /// The header block as sent before the body: `Name: value\r\n` lines and an empty line.
    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(fields.reduce(2) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 })
        for field in fields {
            Self.append(field.name, to: &out)
            out.append(UInt8(ascii: ":"))
            out.append(UInt8(ascii: " "))
            Self.append(field.value, to: &out)
            out.append(UInt8(ascii: "\r"))
            out.append(UInt8(ascii: "\n"))
        }
        out.append(UInt8(ascii: "\r"))
        out.append(UInt8(ascii: "\n"))
        return out
    }

    /// Appends the UTF-8 of `text` with one copy (native strings are contiguous).
    private static func append(_ text: String, to out: inout [UInt8]) {
        let done: Void? = text.utf8.withContiguousStorageIfAvailable { out.append(contentsOf: $0) }
        if done == nil { out.append(contentsOf: text.utf8) }
    }
}
