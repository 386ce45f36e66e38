import FastCGI
import HTTPTypes
import Hummingbird
import NIOCore

/// Writes a Hummingbird `Response` as the FastCGI response: the status and
/// header fields as CGI headers (`Status: 201 Created`, …), then the body as
/// `FCGI_STDOUT`. A body of known length is sent with the end of the request
/// (and gets a `Content-Length`); a streamed one is flushed chunk by chunk.
struct FastCGIResponseWriter: ResponseBodyWriter {
    /// Lent by the handler, which waits for the writes.
    nonisolated(unsafe) let request: FastCGI.Request
    let streamed: Bool

    /// Sends `response` for `request`; its body not for a `HEAD` request.
    static func send(_ response: Response, for request: FastCGI.Request, head: Bool) async throws {
        try request.clearHeaders()
        try request.setHeader("Status", "\(response.status.code) \(response.status.reasonPhrase)")
        for field in response.headers {
            try request.addHeader(field.name.rawName, field.value)
        }
        let length = response.body.contentLength
        if let length, response.headers[.contentLength] == nil {
            try request.setHeader("Content-Length", String(length))
        }
        if head { return }
        try await response.body.write(FastCGIResponseWriter(request: request, streamed: length == nil))
    }

    mutating func write(_ buffer: ByteBuffer) async throws {
        try buffer.withUnsafeReadableBytes { try request.write($0) }
        if streamed { request.flush() }
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        // FastCGI has no trailers; the end of the request ends the body (and
        // sends the head if the body was empty).
    }
}
