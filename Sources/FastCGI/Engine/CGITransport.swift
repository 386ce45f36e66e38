#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// CGI mode: the request is the process's environment, stdin and stdout.
final class CGITransport: RequestTransport {
    let environment: Environment
    private var remaining: Int?

    init() {
        var pairs: [(name: [UInt8], value: [UInt8])] = []
        var cursor = environ
        while let entry = cursor.pointee {
            let bytes = UnsafeRawBufferPointer(start: entry, count: strlen(entry))
            if let eq = bytes.firstIndex(of: UInt8(ascii: "=")) {
                pairs.append((Array(bytes[..<eq]), Array(bytes[(eq + 1)...])))
            }
            cursor += 1
        }
        environment = Environment(pairs: pairs)
        // CGI/1.1 §4.2: the body is CONTENT_LENGTH bytes of stdin.
        remaining = environment["CONTENT_LENGTH"].flatMap { Int($0) }
    }

    var role: Role { .responder }
    var requestID: Int { 0 }
    var isAborted: Bool { false }

    func read(_ kind: InputKind, max: Int) throws(RequestError) -> [UInt8] {
        guard kind == .stdin else { return [] }
        var want = Swift.min(max, 65536)
        if let remaining { want = Swift.min(want, remaining) }
        guard want > 0 else { return [] }
        var failure: Int32 = 0
        let out = [UInt8](unsafeUninitializedCapacity: want) { buffer, count in
            var got = 0
            repeat {
                got = Glibc.read(0, buffer.baseAddress, want)
            } while got < 0 && errno == EINTR
            if got < 0 { failure = errno }
            count = Swift.max(got, 0)
        }
        guard failure == 0 else { throw RequestError("CGI: reading stdin failed: \(String(cString: strerror(failure)))") }
        let got = out.count
        if remaining != nil { remaining! -= got }
        return out
    }

    func write(_ bytes: UnsafeRawBufferPointer, toError: Bool) -> Bool {
        let fd: Int32 = toError ? 2 : 1
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += n
        }
        return true
    }

    func flush() -> Bool { true }
}

extension Server {
    /// Runs the responder once as a CGI program.
    func runCGI() {
        serve(CGITransport())
    }
}

/// A ``Request`` over the CGI environment of this process: environment variables,
/// stdin and stdout. ``Server/run()`` uses it when the process was not started as
/// a FastCGI application; it can also serve a request directly:
///
/// ```swift
/// let request = CGIRequest()
/// try request.write("Hello\n")
/// try request.close()
/// ```
public final class CGIRequest: Request {
    /// A request over the current process's CGI environment.
    public convenience init() {
        self.init(RequestContext(transport: CGITransport(), limits: RequestLimits()))
    }

    /// Creates the request from an engine context.
    public required init(_ context: RequestContext) {
        super.init(context)
    }
}
