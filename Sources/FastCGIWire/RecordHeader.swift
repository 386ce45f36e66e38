/// The fixed 8-byte header that starts every FastCGI record (spec §3.3).
///
/// ```
/// version | type | requestIdB1 | requestIdB0 | contentLengthB1 | contentLengthB0 | paddingLength | reserved
/// ```
public struct RecordHeader: Hashable, Sendable {
    /// Protocol version; `1` for every record we write.
    public var version: UInt8
    /// Record type.
    public var type: RecordType
    /// Request id; `0` for management records.
    public var requestID: UInt16
    /// Number of content bytes that follow the header.
    public var contentLength: UInt16
    /// Number of padding bytes that follow the content.
    public var paddingLength: UInt8

    /// Creates a header. `version` defaults to 1.
    public init(
        version: UInt8 = WireConstants.version, type: RecordType, requestID: UInt16,
        contentLength: UInt16, paddingLength: UInt8 = 0
    ) {
        self.version = version
        self.type = type
        self.requestID = requestID
        self.contentLength = contentLength
        self.paddingLength = paddingLength
    }

    /// Decodes a header from the first 8 bytes of `bytes`; nil if fewer are present.
    public init?<C: Collection<UInt8>>(decoding bytes: C) {
        guard bytes.count >= WireConstants.headerLength else { return nil }
        var i = bytes.startIndex
        func next() -> UInt8 {
            defer { i = bytes.index(after: i) }
            return bytes[i]
        }
        version = next()
        type = RecordType(rawValue: next())
        requestID = UInt16(next()) << 8 | UInt16(next())
        contentLength = UInt16(next()) << 8 | UInt16(next())
        paddingLength = next()
    }

    /// Whether this is a management record (request id 0, spec §3.3).
    public var isManagement: Bool { requestID == WireConstants.nullRequestID }

    /// Total size of the record on the wire: header, content and padding.
    public var recordLength: Int { WireConstants.headerLength + Int(contentLength) + Int(paddingLength) }

    /// Appends the 8 header bytes to `buffer` (one copy, one capacity check).
    public func encode(into buffer: inout [UInt8]) {
        let bytes = (
            version, type.rawValue, UInt8(truncatingIfNeeded: requestID >> 8), UInt8(truncatingIfNeeded: requestID),
            UInt8(truncatingIfNeeded: contentLength >> 8), UInt8(truncatingIfNeeded: contentLength), paddingLength,
            UInt8(0)
        )
        withUnsafeBytes(of: bytes) { buffer.append(contentsOf: $0) }
    }

    /// Padding that brings `contentLength` to a multiple of 8, as the spec recommends.
    public static func padding(for contentLength: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: (8 - contentLength % 8) % 8)
    }
}
