/// Why a byte stream is not valid FastCGI.
public enum WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A header with a version other than 1.
    case unsupportedVersion(UInt8)
    /// A record's content is longer than the decoder allows for its type.
    case recordTooLong(type: RecordType, length: Int, limit: Int)

    public var description: String {
        switch self {
        case .unsupportedVersion(let v): "unsupported FastCGI version \(v) (expected 1)"
        case .recordTooLong(let type, let length, let limit): "\(type) record of \(length) bytes exceeds the \(limit)-byte limit"
        }
    }
}

/// Cuts a byte stream into records, incrementally: feed bytes as they arrive (any
/// split, one byte at a time included) with ``append(_:)`` and take records with
/// ``next()``, which returns nil while a record is incomplete.
public struct RecordDecoder: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0

    /// Creates an empty decoder.
    public init() {}

    /// Adds received bytes.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        dropConsumed()
        buffer.append(contentsOf: bytes)
    }

    /// Adds received bytes (the concrete path for raw buffers: no generic code on
    /// the per-read path of a caller in another module).
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        dropConsumed()
        buffer.append(contentsOf: bytes)
    }

    /// Forgets the bytes already returned as records when none are left over.
    private mutating func dropConsumed() {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
    }

    /// Bytes received but not yet returned as records.
    public var bufferedCount: Int { buffer.count - start }

    /// The next complete record, or nil if more bytes are needed. Throws on a header
    /// that cannot start a valid record; the stream cannot be resynchronised after that.
    public mutating func next() throws(WireError) -> Record? {
        guard let header = RecordHeader(decoding: buffer[start...]) else { return nil }
        guard header.version == WireConstants.version else { throw .unsupportedVersion(header.version) }
        guard buffer.count - start >= header.recordLength else { return nil }
        let contentStart = start + WireConstants.headerLength
        let record = Record(
            type: header.type, requestID: header.requestID,
            content: Array(buffer[contentStart..<contentStart + Int(header.contentLength)]))
        start += header.recordLength
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 1 << 16 && start > buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        return record
    }
}
