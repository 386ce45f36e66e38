import FastCGIClient
import FastCGIWire
import Testing

/// nginx stops sending a request's body once it has the response's head, so
/// output written (and flushed) before `FCGI_STDIN` ends is held until it does
/// (`RequestLimits.maxOutputBeforeBodyEnd`); the unix-socket echo behind nginx
/// in `NginxTests` is the case this is for.
@Suite("Output waits for the end of the body", .serialized, .timeLimit(.minutes(3)))
struct OutputHoldTests {
    @Test("a responder's flushed chunk leaves only after stdin's end, at every level", arguments: [0, 1, 2])
    func flushWaitsForStdinEnd(level: Int) throws {
        let app = try RunningApp("echo", arguments: ["--threading-level", "\(level)"])
        let connection = try FastCGIConnection(to: app.address, timeout: .seconds(10))
        let first = testBytes(100_000, seed: 21)
        let rest = testBytes(1_000, seed: 22)
        try connection.write(
            Raw.begin(1, params: ["REQUEST_METHOD": "POST", "ECHO_FLUSH": "1", "CONTENT_LENGTH": "101000"])
                + Raw.stream(.stdin, 1, first, close: false))
        // Nothing may come while the body is unfinished. (An absence can only be
        // shown over some time; a loaded machine makes a wrong early record less
        // likely to show, never a right answer fail.)
        connection.timeout = .milliseconds(500)
        let early = #expect(throws: ClientError.self, "output came before the end of stdin") {
            try connection.readRecord()
        }
        #expect(early?.kind == .timeout)
        connection.timeout = .seconds(10)
        try connection.write(Raw.stream(.stdin, 1, rest))
        let response = try connection.readResponse(requestID: 1)
        #expect(response.protocolStatus == .requestComplete)
        #expect(splitResponse(response.stdout).body == first + rest)
    }
}
