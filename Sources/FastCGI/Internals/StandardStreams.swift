#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The process's own environment, stdin, stdout and stderr: what CGI mode serves
/// a request from. Descriptors 0, 1 and 2 belong to the process, not to us: they
/// are read and written here, never closed (``endOutput()`` points 1 at
/// `/dev/null` for a program that goes on after its response).
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

    /// Ends stdout for whoever reads it (a CGI program's web server) while the
    /// process goes on: descriptor 1 becomes `/dev/null`, so later writes to
    /// it go nowhere instead of failing.
    static func endOutput() {
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        guard null >= 0 else {
            close(1)
            return
        }
        dup2(null, 1)
        close(null)
    }

    /// Writes all of `bytes` to stdout, or stderr with `toError`.
    static func writeAll(_ bytes: UnsafeRawBufferPointer, toError: Bool) throws(SystemError) {
        try SystemCall.writeAll(toError ? 2 : 1, bytes, call: toError ? "write(stderr)" : "write(stdout)")
    }
}
