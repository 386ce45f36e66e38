/// One name-value pair as carried by `FCGI_PARAMS` and `FCGI_GET_VALUES` (spec §3.4).
///
/// Names and values are bytes: the protocol does not fix an encoding, and web
/// servers forward HTTP header bytes (often Latin-1) unchanged.
public struct NameValuePair: Hashable, Sendable {
    /// The name bytes.
    public var name: [UInt8]
    /// The value bytes.
    public var value: [UInt8]

    /// Creates a pair from bytes.
    public init(name: [UInt8], value: [UInt8]) {
        self.name = name
        self.value = value
    }

    /// Creates a pair from UTF-8 strings.
    public init(_ name: String, _ value: String) {
        self.name = Array(name.utf8)
        self.value = Array(value.utf8)
    }
}

/// Why a name-value pair block could not be decoded.
public enum NameValueError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The block ended inside a length prefix, name or value.
    case truncated
    /// A length exceeds the limit given to the decoder.
    case tooLong(length: Int, limit: Int)

    public var description: String {
        switch self {
        case .truncated: "name-value pair truncated"
        case .tooLong(let length, let limit): "name-value length \(length) exceeds the \(limit)-byte limit"
        }
    }
}

/// Encoding and decoding of name-value pair blocks (spec §3.4).
public enum NameValueCoding {
    /// Appends one length: a single byte below 128, else four bytes with the high bit set.
    public static func encodeLength(_ length: Int, into buffer: inout [UInt8]) {
        precondition(length >= 0 && length <= 0x7fff_ffff, "name-value length out of range")
        if length < 128 {
            buffer.append(UInt8(length))
        } else {
            buffer.append(UInt8(truncatingIfNeeded: length >> 24) | 0x80)
            buffer.append(UInt8(truncatingIfNeeded: length >> 16))
            buffer.append(UInt8(truncatingIfNeeded: length >> 8))
            buffer.append(UInt8(truncatingIfNeeded: length))
        }
    }

    /// Appends the encoding of `pair`.
    public static func encode(_ pair: NameValuePair, into buffer: inout [UInt8]) {
        encodeLength(pair.name.count, into: &buffer)
        encodeLength(pair.value.count, into: &buffer)
        buffer.append(contentsOf: pair.name)
        buffer.append(contentsOf: pair.value)
    }

    /// Encodes a list of pairs into one block.
    public static func encode(_ pairs: [NameValuePair]) -> [UInt8] {
        var buffer: [UInt8] = []
        for pair in pairs { encode(pair, into: &buffer) }
        return buffer
    }

    /// Decodes a whole block. Throws ``NameValueError`` on truncation or an
    /// over-long name or value (`maxLength` bounds each one, guarding against
    /// lengths such as 0x7fffffff that would otherwise make us allocate).
    public static func decode<C: Collection<UInt8>>(_ block: C, maxLength: Int = Int(Int32.max)) throws(NameValueError)
        -> [NameValuePair]
    {
        try NameValueBlock(validating: Array(block), maxLength: maxLength).pairs
    }
}
