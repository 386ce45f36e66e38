/// One FastCGI record: a header's type and request id with its content (spec §3.3).
/// Padding is not kept: it carries nothing.
public struct Record: Hashable, Sendable, CustomStringConvertible {
    /// Record type.
    public var type: RecordType
    /// Request id; 0 for management records.
    public var requestID: UInt16
    /// Content bytes (at most 65535).
    public var content: [UInt8]

    /// Creates a record.
    public init(type: RecordType, requestID: UInt16, content: [UInt8] = []) {
        precondition(content.count <= WireConstants.maxContentLength, "record content over 65535 bytes")
        self.type = type
        self.requestID = requestID
        self.content = content
    }

    /// Appends the record with padding to a multiple of 8 bytes.
    public func encode(into buffer: inout [UInt8]) {
        let padding = RecordHeader.padding(for: content.count)
        RecordHeader(type: type, requestID: requestID, contentLength: UInt16(content.count), paddingLength: padding)
            .encode(into: &buffer)
        buffer.append(contentsOf: content)
        buffer.append(contentsOf: repeatElement(0, count: Int(padding)))
    }

    /// The record as bytes.
    public var encoded: [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 + content.count)
        encode(into: &buffer)
        return buffer
    }

    public var description: String { "\(type)(id \(requestID), \(content.count) bytes)" }

    // MARK: Common records

    /// `FCGI_BEGIN_REQUEST` for `role`, with `FCGI_KEEP_CONN` if `keepConnection`.
    public static func beginRequest(requestID: UInt16, role: Role, keepConnection: Bool) -> Record {
        let role = role.rawValue
        return Record(
            type: .beginRequest, requestID: requestID,
            content: [UInt8(role >> 8), UInt8(role & 0xff), keepConnection ? WireConstants.keepConnectionFlag : 0, 0, 0, 0, 0, 0])
    }

    /// `FCGI_END_REQUEST` with the application status and protocol status.
    public static func endRequest(requestID: UInt16, appStatus: UInt32, protocolStatus: ProtocolStatus) -> Record {
        Record(
            type: .endRequest, requestID: requestID,
            content: [
                UInt8(truncatingIfNeeded: appStatus >> 24), UInt8(truncatingIfNeeded: appStatus >> 16),
                UInt8(truncatingIfNeeded: appStatus >> 8), UInt8(truncatingIfNeeded: appStatus),
                protocolStatus.rawValue, 0, 0, 0,
            ])
    }

    /// `FCGI_UNKNOWN_TYPE` naming the type that was not understood.
    public static func unknownType(_ type: RecordType) -> Record {
        Record(type: .unknownType, requestID: 0, content: [type.rawValue, 0, 0, 0, 0, 0, 0, 0])
    }
}

/// Writes streams as records.
public enum StreamWriter {
    /// Appends `body` as records of `type` of at most 65535 bytes each, padded to 8.
    /// With `close`, an empty record ends the stream (spec §3.3, "stream records").
    public static func append(
        _ body: some Collection<UInt8>, type: RecordType, requestID: UInt16, close: Bool, into buffer: inout [UInt8]
    ) {
        let done: Void? = body.withContiguousStorageIfAvailable {
            append(UnsafeRawBufferPointer($0), type: type, requestID: requestID, close: close, into: &buffer)
        }
        if done == nil {
            Array(body).withUnsafeBytes { append($0, type: type, requestID: requestID, close: close, into: &buffer) }
        }
    }

    /// Appends `body` as records (the contiguous case: one copy per record).
    public static func append(
        _ body: UnsafeRawBufferPointer, type: RecordType, requestID: UInt16, close: Bool, into buffer: inout [UInt8]
    ) {
        let records = (body.count + WireConstants.maxContentLength - 1) / WireConstants.maxContentLength
        buffer.reserveCapacity(buffer.count + body.count + 16 * records + (close ? 8 : 0))
        var offset = 0
        while offset < body.count {
            let count = Swift.min(WireConstants.maxContentLength, body.count - offset)
            let padding = RecordHeader.padding(for: count)
            RecordHeader(type: type, requestID: requestID, contentLength: UInt16(count), paddingLength: padding)
                .encode(into: &buffer)
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: body[offset..<offset + count]))
            for _ in 0..<padding { buffer.append(0) }
            offset += count
        }
        if close {
            RecordHeader(type: type, requestID: requestID, contentLength: 0).encode(into: &buffer)
        }
    }

    /// The end of a completed request (spec §5.3): the empty `FCGI_STDOUT`
    /// record, the empty `FCGI_STDERR` record if that stream was used, then
    /// `FCGI_END_REQUEST` with `FCGI_REQUEST_COMPLETE`.
    public static func appendRequestEnd(requestID: UInt16, stderrUsed: Bool, into buffer: inout [UInt8]) {
        RecordHeader(type: .stdout, requestID: requestID, contentLength: 0).encode(into: &buffer)
        if stderrUsed { RecordHeader(type: .stderr, requestID: requestID, contentLength: 0).encode(into: &buffer) }
        appendEndRequest(requestID: requestID, protocolStatus: .requestComplete, into: &buffer)
    }

    /// `FCGI_END_REQUEST` with application status 0, built in place (the same bytes
    /// as ``Record/endRequest(requestID:appStatus:protocolStatus:)`` without its
    /// content array: this is on every request's path).
    public static func appendEndRequest(requestID: UInt16, protocolStatus: ProtocolStatus, into buffer: inout [UInt8]) {
        let id = (UInt8(truncatingIfNeeded: requestID >> 8), UInt8(truncatingIfNeeded: requestID))
        let record: SixteenBytes = (
            WireConstants.version, RecordType.endRequest.rawValue, id.0, id.1, 0, 8, 0, 0,
            0, 0, 0, 0, protocolStatus.rawValue, 0, 0, 0  // application status 0
        )
        withUnsafeBytes(of: record) { buffer.append(contentsOf: $0) }
    }

    /// `FCGI_BEGIN_REQUEST` for `role` followed by an empty `FCGI_PARAMS` record,
    /// built in place: what a libfcgi worker reads first for each request.
    public static func appendBeginWithoutParams(
        requestID: UInt16, role: Role, keepConnection: Bool, into buffer: inout [UInt8]
    ) {
        let id = (UInt8(truncatingIfNeeded: requestID >> 8), UInt8(truncatingIfNeeded: requestID))
        let roleBytes = (UInt8(truncatingIfNeeded: role.rawValue >> 8), UInt8(truncatingIfNeeded: role.rawValue))
        let begin: SixteenBytes = (
            WireConstants.version, RecordType.beginRequest.rawValue, id.0, id.1, 0, 8, 0, 0,
            roleBytes.0, roleBytes.1, keepConnection ? WireConstants.keepConnectionFlag : 0, 0, 0, 0, 0, 0
        )
        withUnsafeBytes(of: begin) { buffer.append(contentsOf: $0) }
        RecordHeader(type: .params, requestID: requestID, contentLength: 0).encode(into: &buffer)
    }

    /// A whole `FCGI_PARAMS` stream (pairs, then the empty record).
    public static func appendParams(_ pairs: [NameValuePair], requestID: UInt16, into buffer: inout [UInt8]) {
        append(NameValueCoding.encode(pairs), type: .params, requestID: requestID, close: true, into: &buffer)
    }
}

/// Two records' worth of header bytes, copied into a buffer in one append.
private typealias SixteenBytes = (
    UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
)
