extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    var trimmingSpaces: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return String(s)
    }

    /// The text with `\x` quoted-pair escapes (RFC 9110 §5.6.4) replaced by `x`.
    func replacingBackslashEscapes() -> String {
        var out = ""
        var escaped = false
        for c in self {
            if escaped {
                out.append(c)
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.append(c)
            }
        }
        return out
    }
}

extension String {
    /// The bytes as UTF-8 if valid, else as ISO-8859-1 (lossless: one character
    /// per byte), as params and form fields are decoded.
    init(losslessBytes bytes: some Collection<UInt8>) {
        // Params are mostly ASCII: over contiguous bytes that is one pass and a
        // copy (the generic validation cost about 1,000 instructions for "GET").
        let direct = bytes.withContiguousStorageIfAvailable { buffer -> String? in
            for byte in buffer where byte >= 0x80 { return String(validating: buffer, as: UTF8.self) }
            return String(decoding: buffer, as: UTF8.self)
        }
        if let direct, let direct {
            self = direct
        } else if let text = String(validating: bytes, as: UTF8.self) {
            self = text
        } else {
            self = String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
        }
    }
}
