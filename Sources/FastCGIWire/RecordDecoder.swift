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
///
/// The connection's path takes records straight from each read's buffer
/// (``next(taking:)``): a record wholly in it is copied once, into its content;
/// only a record cut by the end of a read is kept here until the rest comes.
/// A record nobody will read (stdin for a request that already ended) is passed
/// over with ``skipNext(taking:)`` once its header is in (``nextHeader(taking:)``):
/// its content is never copied, and the part still on its way is dropped as it
/// arrives.
public struct RecordDecoder: Sendable {
    /// Bytes kept from earlier input: a record's start, cut by the end of a read
    /// (or, after ``append(_:)``, any number of records).
    private var buffer: [UInt8] = []
    private var start = 0
    /// Bytes of a skipped record still to come: dropped on arrival.
    private var discarding = 0

    /// Creates an empty decoder.
    public init() {}

    /// Adds received bytes.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        guard discarding > 0 else {
            buffer.append(contentsOf: bytes)
            return
        }
        for byte in bytes {
            if discarding > 0 { discarding -= 1 } else { buffer.append(byte) }
        }
    }

    /// Adds received bytes (the concrete path for raw buffers: no generic code on
    /// the per-read path of a caller in another module).
    package mutating func append(_ bytes: UnsafeRawBufferPointer) {
        var input = bytes
        dropDiscarded(from: &input)
        keep(input.count, from: &input)
    }

    /// Bytes received but not yet returned as records (a skipped record's bytes
    /// are not counted).
    public var bufferedCount: Int { buffer.count - start }

    /// The header of the next record, once its 8 bytes are in (the content may
    /// still be on its way); nil before. Throws on a header that cannot start a
    /// valid record, as ``next()`` does.
    public mutating func nextHeader() throws(WireError) -> RecordHeader? {
        var input = Self.noInput
        return try nextHeader(taking: &input)
    }

    /// Passes over the record whose header ``nextHeader()`` returned: the part
    /// already in is forgotten, the rest will be dropped as it arrives.
    public mutating func skipNext() {
        var input = Self.noInput
        skipNext(taking: &input)
    }

    /// The next complete record, or nil if more bytes are needed. Throws on a header
    /// that cannot start a valid record; the stream cannot be resynchronised after that.
    public mutating func next() throws(WireError) -> Record? {
        var input = Self.noInput
        return try next(taking: &input)
    }

    /// ``nextHeader()`` over the bytes kept, then `input`: a header at the start
    /// of `input` is read in place; one cut by its end is kept. `input` is
    /// advanced past what was kept (all of it when this returns nil).
    package mutating func nextHeader(taking input: inout UnsafeRawBufferPointer) throws(WireError) -> RecordHeader? {
        dropDiscarded(from: &input)
        let kept = buffer.count - start
        if kept < WireConstants.headerLength && !(kept == 0 && input.count >= WireConstants.headerLength) {
            keep(min(WireConstants.headerLength - kept, input.count), from: &input)
        }
        guard let header = currentHeader(input) else { return nil }
        guard header.version == WireConstants.version else { throw .unsupportedVersion(header.version) }
        return header
    }

    /// ``next()`` over the bytes kept, then `input`, advanced past the record (or,
    /// when it is not complete yet, past everything: kept for the next call). A
    /// record wholly in `input` is copied once, into its content.
    package mutating func next(taking input: inout UnsafeRawBufferPointer) throws(WireError) -> Record? {
        guard let header = try nextHeader(taking: &input) else { return nil }
        let length = header.recordLength
        let contentLength = Int(header.contentLength)
        let headerLength = WireConstants.headerLength
        if buffer.count == start {
            // The header is at the start of `input`.
            guard input.count >= length else {
                keep(input.count, from: &input)
                return nil
            }
            let content = Self.copy(UnsafeRawBufferPointer(rebasing: input[headerLength..<headerLength + contentLength]))
            input = UnsafeRawBufferPointer(rebasing: input[length...])
            return Record(type: header.type, requestID: header.requestID, content: content)
        }
        let kept = buffer.count - start
        if kept < length {
            keep(min(length - kept, input.count), from: &input)
            guard buffer.count - start >= length else { return nil }
        }
        let contentStart = start + headerLength
        let record = Record(
            type: header.type, requestID: header.requestID,
            content: Array(buffer[contentStart..<contentStart + contentLength]))
        consume(length)
        return record
    }

    /// ``skipNext()`` over the bytes kept, then `input`: what is there of the
    /// record is passed over, what is still to come will be dropped on arrival.
    package mutating func skipNext(taking input: inout UnsafeRawBufferPointer) {
        guard let header = currentHeader(input) else { return }
        var left = header.recordLength
        let kept = min(buffer.count - start, left)
        consume(kept)
        left -= kept
        let dropped = min(left, input.count)
        input = UnsafeRawBufferPointer(rebasing: input[dropped...])
        discarding = left - dropped
    }

    /// No input beyond the bytes kept (the ``append(_:)`` path).
    private static var noInput: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: nil, count: 0) }

    /// The header of the next record: in the bytes kept, or (none kept) at the
    /// start of `input`.
    private func currentHeader(_ input: UnsafeRawBufferPointer) -> RecordHeader? {
        buffer.count == start ? RecordHeader(decoding: input) : RecordHeader(decoding: buffer[start...])
    }

    /// Drops the bytes of a skipped record from the start of `input`.
    private mutating func dropDiscarded(from input: inout UnsafeRawBufferPointer) {
        guard discarding > 0 else { return }
        let dropped = min(discarding, input.count)
        discarding -= dropped
        input = UnsafeRawBufferPointer(rebasing: input[dropped...])
    }

    /// Moves `count` bytes from the start of `input` to the bytes kept.
    private mutating func keep(_ count: Int, from input: inout UnsafeRawBufferPointer) {
        guard count > 0 else { return }
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[..<count]))
        input = UnsafeRawBufferPointer(rebasing: input[count...])
    }

    /// Moves past `count` bytes of the kept ones, returned or skipped.
    private mutating func consume(_ count: Int) {
        start += count
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 1 << 16 && start > buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
    }

    /// A new array with a copy of `bytes` (one `memcpy`). An empty one is the
    /// plain empty array: the uninitialized-capacity initializer writes the count
    /// into the storage every empty array shares, which ThreadSanitizer reports
    /// as a race between connections.
    private static func copy(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        guard !bytes.isEmpty else { return [] }
        return [UInt8](unsafeUninitializedCapacity: bytes.count) { target, count in
            UnsafeMutableRawBufferPointer(target).copyMemory(from: bytes)
            count = bytes.count
        }
    }
}
