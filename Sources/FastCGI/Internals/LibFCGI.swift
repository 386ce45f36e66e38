// The only file that sees libfcgi. Every C call is wrapped here once and its
// result mapped to Swift; the C types never leave this file (`private import`).
private import CFCGI
import FastCGIWire

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Process-wide libfcgi calls.
enum LibFCGI {
    /// `FCGX_Init`, run once; libfcgi needs it before any `FCGX_Accept_r`.
    private static let initResult: Int32 = FCGX_Init()

    /// Initialises libfcgi (idempotent).
    static func initialize() throws(ServerError) {
        guard initResult == 0 else { throw ServerError("libfcgi FCGX_Init failed with \(initResult)") }
    }

    /// Whether the process was started as plain CGI: fd 0 is not a listening socket
    /// (libfcgi's own test, `FCGX_IsCGI`).
    static func standardInputIsListeningSocket() -> Bool {
        FCGX_IsCGI() == 0
    }
}

/// Where a worker's output goes: libfcgi's stdout and stderr buffers are handed
/// over here instead of being written to libfcgi's descriptor (see
/// ``LibFCGIRequest/accept()``).
protocol LibFCGIOutput: AnyObject {
    /// Bytes of `FCGI_STDOUT` (or `FCGI_STDERR`) the handler wrote; `closing` is set
    /// for the stream's last bytes (`FCGX_FClose`), `pushing` when the handler
    /// flushed (everything so far must reach the peer now). False when the peer is
    /// gone.
    func libfcgiOutput(_ bytes: UnsafeRawBufferPointer, toError: Bool, closing: Bool, pushing: Bool) -> Bool

    /// The next stdin bytes of a request whose input is handed over directly
    /// (see ``LibFCGIRequest/accept(directStdin:)``), copied into `buffer`;
    /// waits until some are there; 0 at the end of the stream.
    func libfcgiInput(into buffer: UnsafeMutableRawBufferPointer) -> Int

    /// Why reads fail once the input runs out, when an early end (abort,
    /// timeout) cut it short; nil when it ended as the web server sent it.
    var inputFailure: RequestError? { get }

    /// `Request.finish()`: the output so far was handed over; end the request
    /// for the web server now, while the handler goes on.
    func libfcgiFinishEarly()
}

/// The thread-local key that finds the current worker's request from libfcgi's
/// buffer callback (which has no context argument).
private let currentRequestKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key, nil)
    return key
}()

/// One `FCGX_Request`, allocated at a stable address and freed with its owner.
/// Confined to the worker thread that created it.
final class LibFCGIRequest {
    private let raw: UnsafeMutablePointer<FCGX_Request>
    // Confined to one thread at a time (see init) and never lent out inout: no
    // dynamic exclusivity checks on the request path.
    @exclusivity(unchecked) private var dataStarted = false
    /// Stdin bytes read ahead so that the filter's data stream could start early.
    @exclusivity(unchecked) private var stdinAhead: [UInt8] = []
    @exclusivity(unchecked) private var stdinAheadOffset = 0
    /// Limit on `stdinAhead`; see ``RequestLimits/maxBufferedStdin``.
    private let maxStdinAhead: Int
    @exclusivity(unchecked) private(set) var peerGone = false

    /// Set when the web server aborted the request or went away.
    let abortFlag: AbortFlag
    /// Receives stdout and stderr.
    private unowned let output: any LibFCGIOutput
    /// Where the content of the stdout and stderr buffers starts (libfcgi keeps
    /// room for a record header before it).
    @exclusivity(unchecked) private var stdoutStart: UnsafeMutablePointer<UInt8>?
    @exclusivity(unchecked) private var stderrStart: UnsafeMutablePointer<UInt8>?
    /// Where libfcgi's in-stream reads direct stdin from: a stable buffer the
    /// stream's `rdNext`/`stop` point into (at most one record's content).
    private let inputBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
    /// This request's stdin comes through ``fillInput(_:)``, not the pipe.
    @exclusivity(unchecked) private var directStdin = false

    /// The pipe's read end, lent to libfcgi as `ipcFd`: held here so the number
    /// stays valid while libfcgi may read it; closed by its owner, never by libfcgi.
    private let connected: FileDescriptor

    /// Prepares a request that reads from `connected`, the read end of a pipe
    /// whose write end the protocol firewall writes canonical records to. libfcgi
    /// never accepts a connection itself: `listen_sock` is -1, and `keepConnection`
    /// is preset so the first `FCGX_Accept_r` (which "finishes" the previous
    /// request) does not close the descriptor. Every BEGIN_REQUEST the firewall
    /// sends has FCGI_KEEP_CONN, so libfcgi keeps it open from then on.
    ///
    /// Used by one thread at a time, which calls ``bindToCurrentThread()`` first:
    /// libfcgi's output callback finds the request through a thread-local.
    init(connected: FileDescriptor, maxStdinAhead: Int, abortFlag: AbortFlag, output: any LibFCGIOutput) {
        raw = UnsafeMutablePointer<FCGX_Request>.allocate(capacity: 1)
        FCGX_InitRequest(raw, -1, 0)
        self.connected = connected
        raw.pointee.ipcFd = connected.raw
        raw.pointee.keepConnection = 1
        self.maxStdinAhead = maxStdinAhead
        self.abortFlag = abortFlag
        self.output = output
    }

    /// Makes this the request libfcgi's output callback finds on the calling thread.
    func bindToCurrentThread() {
        pthread_setspecific(currentRequestKey, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Reads and discards what is left of the input streams, so the next request's
    /// records are not mistaken for this one's (libfcgi does not drain them itself).
    func drainInput() {
        // Direct stdin never reaches the pipe: nothing to drain (the firewall
        // drops the rest of the stream once the request ends).
        guard !directStdin else { return }
        while let chunk = try? readStdin(max: 65536), !chunk.isEmpty {}
        if roleNumber == 3 {
            while let chunk = try? readData(max: 65536), !chunk.isEmpty {}
        }
    }

    deinit {
        // Not closing: the descriptor is `connected`'s (the pipe's) to close.
        FCGX_Free(raw, 0)
        raw.deallocate()
        inputBuffer.deallocate()
    }

    /// Blocks in `FCGX_Accept_r` until a request has arrived; returns 0, or a
    /// negative code when the descriptor failed or was shut down. With
    /// `directStdin` the request's stdin does not come through the pipe but from
    /// ``LibFCGIOutput/libfcgiInput(into:)`` (the filter role cannot: libfcgi
    /// switches to FCGI_DATA only after reading the end of stdin itself).
    func accept(directStdin: Bool) -> Int32 {
        dataStarted = false
        stdinAhead = []
        stdinAheadOffset = 0
        peerGone = false
        let rc = FCGX_Accept_r(raw)
        if rc >= 0 {
            stdoutStart = takeOver(raw.pointee.out)
            stderrStart = takeOver(raw.pointee.err)
            self.directStdin = directStdin
            if directStdin { takeOverInput(raw.pointee.in) }
        }
        return rc
    }

    // MARK: Input without libfcgi's descriptor

    /// Replaces the reader stream's `fillBuffProc` (the hook `FCGX_GetStr` calls
    /// when the stream's buffer is used up) with one that takes the next stdin
    /// bytes straight from the firewall: a body no longer crosses the kernel
    /// through the pipe, and a handler that ignores its body costs nothing per
    /// chunk. Right after `FCGX_Accept_r` the stream is empty (`rdNext == stop`:
    /// libfcgi's `SetReaderType`), so the first read comes here.
    private func takeOverInput(_ stream: UnsafeMutablePointer<FCGX_Stream>?) {
        guard let stream else { return }
        stream.pointee.fillBuffProc = { stream in
            guard let stream, let context = pthread_getspecific(currentRequestKey) else { return }
            Unmanaged<LibFCGIRequest>.fromOpaque(context).takeUnretainedValue().fillInput(stream)
        }
    }

    private func fillInput(_ stream: UnsafeMutablePointer<FCGX_Stream>) {
        let count = output.libfcgiInput(into: inputBuffer)
        let start = inputBuffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        stream.pointee.rdNext = start
        stream.pointee.stopUnget = start
        stream.pointee.stop = start + count
        // The end of the stream: FCGX_GetStr returns what it has and stops asking.
        if count == 0 { stream.pointee.isClosed = 1 }
    }

    // MARK: Output without libfcgi's descriptor

    /// Replaces a writer stream's `emptyBuffProc` (the hook libfcgi calls when its
    /// buffer is full, on `FCGX_FFlush` and on `FCGX_FClose`) with one that hands
    /// the buffered bytes to ``output`` — the handler's thread then writes to the
    /// web server itself, with no descriptor and no relay thread on the way back.
    /// `FCGX_Stream` is public in fcgiapp.h; right after `FCGX_Accept_r` a writer's
    /// `wrNext` is where its content starts. The end records and END_REQUEST are
    /// written by the worker (``LibFCGIWorker``), not by libfcgi.
    private func takeOver(_ stream: UnsafeMutablePointer<FCGX_Stream>?) -> UnsafeMutablePointer<UInt8>? {
        guard let stream else { return nil }
        stream.pointee.emptyBuffProc = { stream, doClose in
            guard let stream, let context = pthread_getspecific(currentRequestKey) else { return }
            let request = Unmanaged<LibFCGIRequest>.fromOpaque(context).takeUnretainedValue()
            request.emptyBuffer(stream, closing: doClose != 0)
        }
        return stream.pointee.wrNext
    }

    private func emptyBuffer(_ stream: UnsafeMutablePointer<FCGX_Stream>, closing: Bool) {
        let toError = stream == raw.pointee.err
        guard let start = toError ? stderrStart : stdoutStart, let end = stream.pointee.wrNext else { return }
        let count = end - start
        let delivered = output.libfcgiOutput(
            UnsafeRawBufferPointer(start: start, count: count), toError: toError, closing: closing, pushing: flushing)
        stream.pointee.wrNext = start
        if !delivered {
            // The next FCGX_PutStr fails. No FCGI_errno: with one, FCGX_Finish_r
            // would close the pipe and the worker would be lost.
            stream.pointee.isClosed = 1
        }
    }

    /// The params of the current request, set by the worker after each accept:
    /// FCGI_ROLE, then the params, as libfcgi's `envp` would have them, over the
    /// block the firewall already holds (libfcgi itself gets an empty PARAMS
    /// stream, so its `envp` holds FCGI_ROLE only).
    @exclusivity(unchecked) var environment = CGIEnvironment(block: NameValueBlock())

    /// `FCGX_Finish_r`: closes the streams (their last bytes reach ``output``
    /// with `closing` set) and frees the request; the pipe stays open. The
    /// end records and `FCGI_END_REQUEST` are the worker's to write.
    func finish() {
        // FCGX_Finish_r closes ipcFd when a stream holds an error; none of ours
        // sets one (see emptyBuffer), and the in-stream's is cleared here, so
        // the pipe stays its owner's to close.
        FCGX_ClearError(raw.pointee.in)
        FCGX_Finish_r(raw)
    }

    /// The request's role, or nil for a role number FastCGI does not define.
    var roleNumber: Int { Int(raw.pointee.role) }

    /// The request id of the current request.
    var requestID: Int { Int(raw.pointee.requestId) }

    // MARK: Input

    /// Reads up to `max` stdin bytes; empty at end of stream.
    func readStdin(max: Int) throws(RequestError) -> [UInt8] {
        if dataStarted {
            let available = stdinAhead.count - stdinAheadOffset
            let n = Swift.min(max, available)
            defer { stdinAheadOffset += n }
            return Array(stdinAhead[stdinAheadOffset..<stdinAheadOffset + n])
        }
        return try read(max: max)
    }

    /// Reads up to `max` bytes of the filter's `FCGI_DATA` stream. libfcgi can only
    /// switch to it after stdin's end, so what is left of stdin is read ahead first,
    /// up to the configured bound.
    func readData(max: Int) throws(RequestError) -> [UInt8] {
        if !dataStarted {
            while true {
                let chunk = try read(max: 65536)
                if chunk.isEmpty { break }
                guard stdinAhead.count + chunk.count <= maxStdinAhead else {
                    throw RequestError(
                        "request \(requestID): stdin exceeds the \(maxStdinAhead)-byte buffer allowed when FCGI_DATA is read first",
                        cause: .limitExceeded)
                }
                stdinAhead.append(contentsOf: chunk)
            }
            guard FCGX_StartFilterData(raw.pointee.in) == 0 else {
                throw RequestError("request \(requestID): no FCGI_DATA stream (not a filter request?)")
            }
            dataStarted = true
        }
        return try read(max: max)
    }

    private func read(max: Int) throws(RequestError) -> [UInt8] {
        let stream = raw.pointee.in
        guard stream != nil, max > 0 else { return [] }
        // Read into a scratch buffer kept for the worker's life: a fresh zeroed
        // buffer per read cost more than everything else on the request path.
        let want = Int32(clamping: Swift.min(max, scratch.count))
        let got = scratch.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: Int(want)) {
                FCGX_GetStr($0, want, stream)
            }
        }
        if got < want, FCGX_GetError(stream) != 0 {
            peerGone = true
            throw RequestError("request \(requestID): reading input failed (\(LibFCGIRequest.describe(FCGX_GetError(stream))))")
        }
        guard got > 0 else {
            if let failure = output.inputFailure { throw failure }
            return []
        }
        return Array(scratch[..<Int(got)])
    }

    @exclusivity(unchecked) private var scratch = [UInt8](repeating: 0, count: 65536)

    // MARK: Output

    /// Writes to `FCGI_STDOUT` (or `FCGI_STDERR`); returns false if the peer is gone.
    @discardableResult
    func write(_ bytes: UnsafeRawBufferPointer, toError: Bool) -> Bool {
        guard !peerGone, bytes.count > 0 else { return !peerGone }
        let stream = toError ? raw.pointee.err : raw.pointee.out
        guard stream != nil else { return false }
        var offset = 0
        while offset < bytes.count {
            let n = Int32(clamping: bytes.count - offset)
            let rc = FCGX_PutStr(bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: CChar.self), n, stream)
            if rc < 0 {
                peerGone = true
                return false
            }
            offset += Int(rc)
        }
        return true
    }

    /// `FCGX_FFlush` on stdout; false if the peer is gone.
    @discardableResult
    func flush() -> Bool {
        guard !peerGone, raw.pointee.out != nil else { return !peerGone }
        // libfcgi calls the same hook for a full buffer and for a flush: this flag
        // tells them apart (a full buffer may wait to be sent with the next ones).
        flushing = true
        defer { flushing = false }
        if FCGX_FFlush(raw.pointee.out) != 0 { peerGone = true }
        return !peerGone
    }

    /// Set while ``flush()`` runs `FCGX_FFlush`.
    @exclusivity(unchecked) private var flushing = false

    private static func describe(_ code: Int32) -> String {
        if code < 0, code > -4096, let message = strerror(-code) { return String(cString: message) }
        if code > 0, let message = strerror(code) { return String(cString: message) }
        switch code {
        case -9998: return "libfcgi not initialised"
        case -9999: return "unknown error"
        case -3: return "FastCGI protocol error"
        case -4: return "parameter error"
        case -5: return "call sequence error"
        default: return "error \(code)"
        }
    }
}

extension LibFCGIRequest: RequestTransport {
    var role: Role { Role(rawValue: UInt16(clamping: roleNumber)) ?? .responder }

    var isAborted: Bool { peerGone || abortFlag.isSet }

    func finishEarly() {
        flush()
        output.libfcgiFinishEarly()
    }

    func read(_ kind: InputKind, max: Int) throws(RequestError) -> [UInt8] {
        switch kind {
        case .stdin: try readStdin(max: max)
        case .data: try readData(max: max)
        }
    }
}
