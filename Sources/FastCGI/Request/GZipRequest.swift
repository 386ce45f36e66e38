/// A ``Request`` that gzips the body when the client accepts it (the original
/// module's `GZipRequest`, the `Request` with `cgi.GZipMixIn` mixed in).
///
/// ```swift
/// try Server(handlers: [.responder: App.self], requestType: GZipRequest.self).run()
/// ```
///
/// When the headers go out, compression is negotiated from `HTTP_ACCEPT_ENCODING`:
/// `gzip` with no weight or a weight above 0 accepts, `q=0` refuses (see
/// RFC 9110 §12.5.3). With a level above 0, `Vary: Accept-Encoding` is always added
/// (once); when compressing, `Content-Encoding: gzip` is set and `Content-Length`
/// removed. A response that already has a `Content-Encoding`, or whose `Status` is
/// 1xx, 204 or 304 (no body), is left alone.
///
/// The body is compressed as it is written; ``Request/flush()`` makes a zlib sync flush so
/// everything written so far can be decoded by the client, and the end of the
/// request finishes the gzip member. Memory stays bounded for any body size.
open class GZipRequest: Request {
    /// The zlib compression level: 1 (fastest) to 9 (smallest), 0 to disable
    /// compression. Defaults to 6, zlib's default.
    public private(set) var compressionLevel = 6
    private var deflater: Deflater?

    /// Creates the request from the engine's handle.
    public required init(_ handle: Handle) {
        super.init(handle)
    }

    /// Whether the body is being gzipped; decided when the headers are sent.
    public var isCompressing: Bool { deflater != nil }

    /// Sets the compression level (clamped to 0...9; 0 disables compression).
    /// Throws once the headers were sent, since they depend on it.
    public func setCompressionLevel(_ level: Int) throws(SequencingError) {
        guard !headersSent else {
            throw SequencingError("setCompressionLevel(\(level))", "the headers have already been sent")
        }
        compressionLevel = Swift.min(Swift.max(level, 0), 9)
    }

    /// Negotiates compression and adjusts the headers.
    open override func willSendHeaders() {
        super.willSendHeaders()
        guard compressionLevel > 0 else { return }
        try? appendHeaderValue("Vary", "Accept-Encoding")
        guard AcceptEncoding.acceptsGzip(environ["HTTP_ACCEPT_ENCODING"]),
            getHeader("Content-Encoding") == nil,
            !statusForbidsBody
        else { return }
        do {
            deflater = try Deflater(level: compressionLevel)
        } catch {
            self.error("\(error); sending the response uncompressed\n")
            return
        }
        try? setHeader("Content-Encoding", "gzip")
        try? delHeader("Content-Length")
    }

    /// Compresses the chunk when compression was negotiated.
    open override func encodeBody(_ chunk: [UInt8], flush: Bool, final: Bool) -> [UInt8] {
        guard let deflater else { return chunk }
        return deflater.compress(chunk, mode: final ? .finish : flush ? .sync : .none)
    }
}

/// A ``GZipRequest`` over the CGI environment of this process (the original's
/// gzip CGI request); see ``CGIRequest``.
public final class GZipCGIRequest: GZipRequest {
    /// A request over the current process's CGI environment.
    public convenience init() {
        self.init(Request.Handle(transport: CGITransport(), limits: RequestLimits()))
    }

    /// Creates the request from an engine handle.
    public required init(_ handle: Handle) {
        super.init(handle)
    }
}
