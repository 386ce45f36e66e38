import FastCGI
import NIOCore

/// A FastCGI request's body (`FCGI_STDIN`) as the `ByteBuffer` chunks a
/// Hummingbird `RequestBody` streams: read as the handler asks for it, with the
/// engine's backpressure (a request alone on its connection is read at most
/// 256 KiB ahead of its handler).
///
/// `@unchecked Sendable`: a `RequestInput` belongs to its request's handler, and
/// this sequence is only ever iterated inside that handler's task (Hummingbird
/// reads the body while it responds, and the adapter writes the response body,
/// which may stream the request body back, before the handler returns).
struct FastCGIRequestBody: AsyncSequence, @unchecked Sendable {
    typealias Element = ByteBuffer

    let input: RequestInput

    struct AsyncIterator: AsyncIteratorProtocol {
        let input: RequestInput

        mutating func next() async throws -> ByteBuffer? {
            let chunk = try await input.read(65536)
            return chunk.isEmpty ? nil : ByteBuffer(bytes: chunk)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(input: input) }
}
