/// CGI mode: the request is the process's environment, stdin and stdout
/// (``StandardStreams`` does the system calls).
final class CGITransport: RequestTransport {
    let environment: CGIEnvironment
    private var remaining: Int?

    init() {
        environment = CGIEnvironment(pairs: StandardStreams.environment())
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
        let chunk: [UInt8]
        do {
            chunk = try StandardStreams.readInput(max: want)
        } catch {
            throw RequestError("CGI: reading stdin failed: \(error)")
        }
        if remaining != nil { remaining! -= chunk.count }
        return chunk
    }

    func write(_ bytes: UnsafeRawBufferPointer, toError: Bool) -> Bool {
        do {
            try StandardStreams.writeAll(bytes, toError: toError)
            return true
        } catch {
            return false
        }
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
/// request.close()
/// ```
public final class CGIRequest: Request {
    /// A request over the current process's CGI environment.
    public convenience init() {
        self.init(Request.Handle(transport: CGITransport(), limits: RequestLimits()))
    }

    /// Creates the request from an engine handle.
    public required init(_ handle: Handle) {
        super.init(handle)
    }
}
