import FastCGI
import NIOCore
import Vapor

/// Writes a Vapor `Response` as the FastCGI response: the status and header
/// fields as CGI headers (`Status: 201 Created`, …), then the body as
/// `FCGI_STDOUT`, with its `Content-Length`.
enum VaporResponseWriter {
    /// Header fields of one HTTP connection, which the web server sets itself
    /// (Vapor's `Response` adds `Transfer-Encoding: chunked` to a streamed body).
    static let hopByHop: [String] = ["Transfer-Encoding", "Connection", "Keep-Alive"]

    /// Sends `response` for `request`; no body for a `HEAD` request or a `204`,
    /// as Vapor's server does (and a streamed body's callback is then not run).
    static func send(_ response: Vapor.Response, for request: FastCGI.Request, head: Bool, on eventLoop: any EventLoop)
        async throws
    {
        var headers = response.headers
        for name in hopByHop { headers.remove(name: name) }
        var body: ByteBuffer?
        if !head && response.status != .noContent {
            // A buffer as it is; a stream (`Body(stream:)`, `Body(asyncStream:)`,
            // `req.fileio` files) run to its end and gathered.
            body = try await response.body.collect(on: eventLoop).get()
            headers.replaceOrAdd(name: .contentLength, value: String(body?.readableBytes ?? 0))
        }
        try request.clearHeaders()
        try request.setHeader("Status", "\(response.status.code) \(response.status.reasonPhrase)")
        for (name, value) in headers {
            try request.addHeader(name, value)
        }
        if let body, body.readableBytes > 0 {
            try body.withUnsafeReadableBytes { try request.write($0) }
        }
    }
}
