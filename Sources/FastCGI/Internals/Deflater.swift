// The only file that sees zlib: a gzip stream compressor for GZipRequest.
private import CZlib

/// Compresses one gzip member (RFC 1952) incrementally with zlib's deflate.
///
/// Memory is bounded by zlib's window (about 256 KiB at the default settings) plus
/// one 64 KiB output buffer, whatever the body size.
final class Deflater {
    /// How much of the input must come out now.
    enum Mode {
        /// Whatever zlib wants to emit; more input follows.
        case none
        /// Everything so far becomes decodable (a zlib sync flush); the stream goes on.
        case sync
        /// End of the member: the rest, then the CRC-32 and length trailer.
        case finish
    }

    private let stream: UnsafeMutablePointer<z_stream>
    private var scratch = [UInt8](repeating: 0, count: 65536)
    private(set) var isFinished = false

    /// A compressor at `level` (1 fastest … 9 smallest).
    init(level: Int) throws(RequestError) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // windowBits 15 + 16 selects the gzip wrapper; memLevel 8 is zlib's default.
        let status = deflateInit2_(
            stream, Int32(level), Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
            zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw RequestError("gzip: deflateInit2 failed (zlib status \(status))")
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// Compresses `input` and returns the bytes zlib produced for it.
    func compress(_ input: [UInt8], mode: Mode) -> [UInt8] {
        guard !isFinished else { return [] }
        let flush: Int32
        switch mode {
        case .none: flush = Z_NO_FLUSH
        case .sync: flush = Z_SYNC_FLUSH
        case .finish: flush = Z_FINISH
        }
        if input.isEmpty && mode == .none { return [] }
        var output: [UInt8] = []
        var input = input
        input.withUnsafeMutableBufferPointer { source in
            stream.pointee.next_in = source.baseAddress
            stream.pointee.avail_in = UInt32(source.count)
            scratch.withUnsafeMutableBufferPointer { buffer in
                while true {
                    stream.pointee.next_out = buffer.baseAddress
                    stream.pointee.avail_out = UInt32(buffer.count)
                    let status = deflate(stream, flush)
                    let produced = buffer.count - Int(stream.pointee.avail_out)
                    output.append(contentsOf: buffer[..<produced])
                    if status == Z_STREAM_END {
                        isFinished = true
                        break
                    }
                    // Z_BUF_ERROR means no progress was possible (nothing left to
                    // do); anything else is a bug in how zlib is driven.
                    guard status == Z_OK else { break }
                    // Done when zlib had room to spare: input consumed, flush complete.
                    if stream.pointee.avail_out != 0 && stream.pointee.avail_in == 0 { break }
                }
            }
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
        }
        return output
    }
}
