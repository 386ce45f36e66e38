/// How ``Request/offload(file:contentType:)`` hands a file to the web server,
/// which then sends it itself (from the page cache, with `sendfile(2)`) instead
/// of the app copying every byte through FastCGI.
///
/// ```swift
/// var configuration = Server.Configuration(address: "unix:/run/app/app.sock")
/// // nginx: `location /protected-files/ { internal; alias /srv/files/; }`
/// configuration.fileOffload = .accelRedirect(root: "/srv/files", location: "/protected-files/")
/// ```
public enum FileOffload: Sendable, Hashable {
    /// nginx's `X-Accel-Redirect`: a file below `root` is named by `location`
    /// followed by its path below `root`. `location` is an `internal` location
    /// of nginx's whose `alias` is `root`.
    case accelRedirect(root: String, location: String)
    /// `X-Sendfile` with the file's absolute path: Apache with mod_xsendfile
    /// (`XSendFile On`, `XSendFilePath`), lighttpd with `"x-sendfile" =>
    /// "enable"` (and `"x-sendfile-docroot"`).
    case sendfile
}

extension Request {
    /// Answers with the file at `path`, sent by the web server
    /// (``Server/Configuration/fileOffload``): nginx's `X-Accel-Redirect`, or
    /// `X-Sendfile` for Apache and lighttpd. Without an offload configured, the
    /// app sends the file itself. The body written so far (buffered) is dropped;
    /// the headers set so far go with the answer, but for the default
    /// `Content-Type`: without `contentType` the web server picks one from the
    /// file's name.
    ///
    /// ```swift
    /// struct Download: Handler {
    ///     func process(_ request: Request) throws {
    ///         try request.setHeader("Content-Disposition", "attachment")
    ///         try request.offload(file: "/srv/files/report.pdf")
    ///     }
    /// }
    /// ```
    ///
    /// Throws ``HTTPError`` 404 for a path that is not absolute, has a `..`
    /// component, lies outside the offload's `root`, or (sent by the app) cannot
    /// be opened; ``SequencingError`` once the headers were sent.
    public func offload(file path: String, contentType: String? = nil) throws {
        guard !headersSent else { throw SequencingError("offload(file:)", "the headers were sent already") }
        guard path.hasPrefix("/"), !path.split(separator: "/").contains("..") else { throw HTTPError(.notFound) }
        if isBuffering { try clearOutput() }
        if let contentType { try setHeader("Content-Type", contentType) } else { try delHeader("Content-Type") }
        switch fileOffload {
        case .accelRedirect(let root, let location):
            let root = root.hasSuffix("/") ? root : root + "/"
            guard path.hasPrefix(root) else { throw HTTPError(.notFound) }
            let below = PercentCoding.encode(String(path.dropFirst(root.count))) { byte in
                byte == UInt8(ascii: "/") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
                    || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "~") || (byte >= 0x30 && byte <= 0x39)
                    || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7a)
            }
            try setHeader("X-Accel-Redirect", (location.hasSuffix("/") ? location : location + "/") + below)
        case .sendfile:
            try setHeader("X-Sendfile", path)
        case nil:
            try sendFileItself(path)
        }
    }

    /// No web server to hand the file to: it is read and written here, its
    /// length in the headers.
    private func sendFileItself(_ path: String) throws {
        let file: FileDescriptor
        let size: Int
        do {
            file = try FileDescriptor.openForReading(path)
            size = try file.regularFileSize()
        } catch {
            throw HTTPError(.notFound)
        }
        if contentTypeUnset { try setHeader("Content-Type", "application/octet-stream") }
        try setHeader("Content-Length", String(size))
        setBuffering(false)
        while !aborted {
            let chunk = try file.readChunk(max: 256 << 10)
            if chunk.isEmpty { break }
            try write(chunk)
        }
    }

    private var contentTypeUnset: Bool { getHeader("Content-Type") == nil }
}
