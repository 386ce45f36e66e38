/// CGI mode: the request is the process's environment, stdin and stdout
/// (``StandardStreams`` does the system calls).
///
/// Output is held until the body has all been read, as on the FastCGI path: a
/// web server that writes the whole body before it reads the answer (Apache's
/// mod_cgi) would otherwise wait on a full stdin pipe while the app waits on a
/// full stdout pipe. Past `holdLimit` bytes held, they are written anyway; at
/// the end, whatever of the body is left unread is read and dropped first.
final class CGITransport: RequestTransport {
    let environment: CGIEnvironment
    private var remaining: Int?
    private var held: [UInt8] = []
    private var holding: Bool
    private let holdLimit: Int

    init(holdLimit: Int = RequestLimits().maxOutputBeforeBodyEnd) {
        environment = CGIEnvironment(pairs: StandardStreams.environment())
        // CGI/1.1 §4.2: the body is CONTENT_LENGTH bytes of stdin.
        remaining = environment["CONTENT_LENGTH"].flatMap { Int($0) }
        holding = (remaining ?? 0) > 0
        self.holdLimit = holdLimit
    }

    deinit { finishOutput() }

    var role: Role { .responder }
    var requestID: Int { 0 }
    var isAborted: Bool { false }

    func read(_ kind: InputKind, max: Int) throws(RequestError) -> [UInt8] {
        guard kind == .stdin else { return [] }
        var want = Swift.min(max, 65536)
        if let remaining { want = Swift.min(want, remaining) }
        guard want > 0 else {
            release()
            return []
        }
        let chunk: [UInt8]
        do {
            chunk = try StandardStreams.readInput(max: want)
        } catch {
            throw RequestError("CGI: reading stdin failed: \(error)")
        }
        if remaining != nil { remaining! -= chunk.count }
        if chunk.isEmpty || remaining == 0 { release() }
        return chunk
    }

    func write(_ bytes: UnsafeRawBufferPointer, toError: Bool) -> Bool {
        if holding && !toError {
            held.append(contentsOf: bytes)
            if held.count > holdLimit { release() }
            return true
        }
        do {
            try StandardStreams.writeAll(bytes, toError: toError)
            return true
        } catch {
            return false
        }
    }

    func flush() -> Bool { true }

    /// The body has ended (or too much is held): what was held goes out.
    private func release() {
        guard holding else { return }
        holding = false
        guard !held.isEmpty else { return }
        let bytes = held
        held = []
        _ = bytes.withUnsafeBytes { write($0, toError: false) }
    }

    /// `Request.finish()`: what was held goes out and stdout is closed, so the web
    /// server has the whole response while the program goes on.
    func finishEarly() {
        finishOutput()
        StandardStreams.endOutput()
    }

    /// The request is over: the unread rest of the body is read and dropped
    /// (so the web server's write of it ends), then what was held goes out.
    func finishOutput() {
        while holding, (remaining ?? 0) > 0, let chunk = try? read(.stdin, max: 65536), !chunk.isEmpty {}
        release()
    }
}

extension Server {
    /// Runs the responder once as a CGI program.
    func runCGI() {
        let transport = CGITransport(holdLimit: limits.maxOutputBeforeBodyEnd)
        serve(transport)
        transport.finishOutput()
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
