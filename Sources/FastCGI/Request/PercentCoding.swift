/// `%XX` escapes (RFC 3986 §2.1): decoding for paths, forms and cookies, encoding
/// for cookie values. Bytes in, bytes out; no request, no I/O (fuzzed with the
/// parsers that use it).
enum PercentCoding {
    /// A `%` not followed by two hex digits, at `index` of the input.
    struct BadEscape: Error {
        let index: Int
    }

    /// The bytes with every `%XX` decoded (and `+` as a space with
    /// `plusAsSpace`, as forms have it).
    static func decode(_ bytes: ArraySlice<UInt8>, plusAsSpace: Bool = false) throws(BadEscape) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            if b == UInt8(ascii: "+") && plusAsSpace {
                out.append(UInt8(ascii: " "))
            } else if b == UInt8(ascii: "%") {
                guard bytes.endIndex - i >= 3, let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2]) else {
                    throw BadEscape(index: i)
                }
                out.append(hi << 4 | lo)
                i += 2
            } else {
                out.append(b)
            }
            i += 1
        }
        return out
    }

    /// The decoded bytes, or nil for a malformed escape.
    static func decode(_ bytes: ArraySlice<UInt8>) -> [UInt8]? {
        try? decode(bytes, plusAsSpace: false)
    }

    /// `text` with every byte outside `allowed` (and `%` itself) as `%XX`.
    static func encode(_ text: String, allowing allowed: (UInt8) -> Bool) -> String {
        guard text.utf8.contains(where: { !allowed($0) || $0 == UInt8(ascii: "%") }) else { return text }
        let digits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + 8)
        for b in text.utf8 {
            if allowed(b) && b != UInt8(ascii: "%") {
                out.append(b)
            } else {
                out += [UInt8(ascii: "%"), digits[Int(b >> 4)], digits[Int(b & 0x0F)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
