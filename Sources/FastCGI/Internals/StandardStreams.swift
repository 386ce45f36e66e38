#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The process's own environment, stdin, stdout and stderr: what CGI mode serves
/// a request from. Descriptors 0, 1 and 2 belong to the process, not to us: they
/// are read and written here, never closed.
enum StandardStreams {
    /// Every `NAME=VALUE` entry of the process environment, as bytes.
    static func environment() -> [(name: [UInt8], value: [UInt8])] {
        var pairs: [(name: [UInt8], value: [UInt8])] = []
        var cursor = environ
        while let entry = cursor.pointee {
            let bytes = UnsafeRawBufferPointer(start: entry, count: strlen(entry))
            if let eq = bytes.firstIndex(of: UInt8(ascii: "=")) {
                pairs.append((Array(bytes[..<eq]), Array(bytes[(eq + 1)...])))
            }
            cursor += 1
        }
        return pairs
    }

    /// Up to `max` bytes of stdin (blocking); empty at its end.
    static func readInput(max: Int) throws(SystemError) -> [UInt8] {
        var failure: SystemError?
        let bytes = [UInt8](unsafeUninitializedCapacity: max) { buffer, count in
            do throws(SystemError) {
                count = try SystemCall.retrying("read(stdin)") { Glibc.read(0, buffer.baseAddress, max) }
            } catch {
                failure = error
                count = 0
            }
        }
        if let failure { throw failure }
        return bytes
    }

    /// Writes all of `bytes` to stdout, or stderr with `toError`.
    static func writeAll(_ bytes: UnsafeRawBufferPointer, toError: Bool) throws(SystemError) {
        try SystemCall.writeAll(toError ? 2 : 1, bytes, call: toError ? "write(stderr)" : "write(stdout)")
    }
}
