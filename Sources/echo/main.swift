// The echo contract that tests and benchmarks rely on (and that the C reference
// implements too):
// - responder: `Content-Type: application/octet-stream` and exactly the stdin bytes;
//   with the param ECHO_PARAMS=1, `Content-Type: text/plain` and every param as
//   `NAME=VALUE\n` sorted by name;
// - filter: `Content-Type: text/plain`, then stdin bytes, then data bytes;
// - authorizer: `Status: 200` and `Variable-AUTH_USER: <REMOTE_USER or anonymous>`
//   when HTTP_AUTHORIZATION is present, else `Status: 403`.
// Special params for tests: ECHO_THROW=1 (or the HTTP header X-Echo-Throw: 1)
// makes the handler throw; ECHO_EXIT=1 calls
// Server.exit() from inside the handler; ECHO_SLEEP_MS=N (or the header
// X-Echo-Sleep-Ms: N) sleeps N ms first;
// ECHO_FLUSH=1 flushes after each chunk echoed, and the filter after its stdin
// (a gzip sync flush with --gzip);
// ECHO_PAGE=N (or the header X-Echo-Page: N) answers with N bytes of a generated
// HTML table instead (a page for the gzip benchmark; repeated past 1 MiB); ECHO_DISCARD=1 answers `ok` without
// reading the body (an upload the handler ignores; the C reference reads and
// discards it, as a libfcgi program must); ECHO_HEADER=VALUE sets the response
// header `X-Echo: VALUE` first (a value holding CR or LF is refused: the handler
// throws and the 500 page follows); ECHO_PARAM=NAME answers the value of param
// NAME (`(absent)` if none), as the C reference answers it with FCGX_GetParam;
// ECHO_OFFLOAD=NAME (or X-Echo-Offload: NAME) answers with the file NAME in the
// directory of the environment variable ECHO_FILES through
// `request.offload(file:)` (see --file-offload);
// With the environment variable ECHO_TRACE=1, a server span per request goes to
// an in-memory tracer that reads W3C traceparent (Tracing.swift), and the header
// X-Echo-Spans: 1 answers with the finished spans;
// ECHO_AFTER_MS=N (or X-Echo-After-Ms: N) calls `request.finish()` after the
// echo and then works N ms more (logging "echo: background work done");
// ECHO_HOLD_MS=N works N ms after the echo before it returns (a handler past
// the request timeout after its output went out);
// ECHO_PID=1 answers the serving process's id (Swift only: for the process-manager
// tests, as are the environment variables ECHO_TRAP_IN_WORKER: a pool worker traps
// as it starts, and ECHO_PREPARE: a `prepare` hook logs the pid it ran in).
// Like the C reference, echo sends its headers before the body, so a response
// never carries the `Content-Length` a buffered Swift response gets at its end
// (error pages aside).
import ArgumentParser
import FastCGI
import FastCGIOptions

#if canImport(Glibc)
    import Glibc
#endif

/// Set once in `main` before the server runs; read by handlers for ECHO_EXIT.
nonisolated(unsafe) var runningServer: Server?

/// 1 MiB of HTML table rows with varying numbers: compresses like a real page
/// (about 5:1 at level 6), unlike repeated bytes.
let samplePage: [UInt8] = {
    var page = Array("<!DOCTYPE html>\n<html><body><table>\n".utf8)
    var state: UInt64 = 0x5eed
    var row = 0
    while page.count < 1 << 20 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        let value = state >> 40
        page += Array("<tr><td class=\"id\">\(row)</td><td>item-\(value % 9973)</td><td>\(value)</td></tr>\n".utf8)
        row += 1
    }
    return page
}()

struct EchoError: Error, CustomStringConvertible {
    var description: String { "echo was asked to fail (ECHO_THROW=1)" }
}

/// Where ECHO_OFFLOAD names files (the environment variable ECHO_FILES).
let offloadDirectory: String? = getenv("ECHO_FILES").map { String(cString: $0) }

struct EchoResponder: Handler {
    func process(_ request: Request) throws {
        // The test params are ECHO_* and X-Echo-* headers: a request with none
        // (every benchmark's) costs one pass over the names, not a lookup each.
        let environ = request.environ
        let special = environ.containsName(withPrefix: "ECHO_") || environ.containsName(withPrefix: "HTTP_X_ECHO_")
        func param(_ name: String) -> String? { special ? environ[name] : nil }
        if param("ECHO_THROW") == "1" || param("HTTP_X_ECHO_THROW") == "1" { throw EchoError() }
        if param("ECHO_EXIT") == "1" { runningServer?.exit() }
        if let delay = (param("ECHO_SLEEP_MS") ?? param("HTTP_X_ECHO_SLEEP_MS")).flatMap({ UInt32($0) }) {
            // Logged first: a test waits for this line, not for time.
            request.logger.notice("echo: sleeping \(delay) ms")
            usleep(delay * 1000)
        }
        if let value = param("ECHO_HEADER") { try request.setHeader("X-Echo", value) }
        if let echoTracer, param("HTTP_X_ECHO_SPANS") == "1" {
            try request.setHeader("Content-Type", "text/plain")
            try request.write(echoTracer.report())
            return
        }
        if let name = param("ECHO_OFFLOAD") ?? param("HTTP_X_ECHO_OFFLOAD") {
            // A name in the directory the process was given, nothing else.
            guard let directory = offloadDirectory, !name.contains("/") else { throw HTTPError(.notFound) }
            try request.offload(file: "\(directory)/\(name)")
            return
        }
        if param("ECHO_PID") == "1" {
            try request.setHeader("Content-Type", "text/plain")
            try request.write("\(getpid())\n")
            return
        }
        if let name = param("ECHO_PARAM") {
            try request.setHeader("Content-Type", "text/plain")
            try request.outputHeaders()
            try request.write(request.environ.bytes(name) ?? Array("(absent)".utf8))
            return
        }
        if param("ECHO_DISCARD") == "1" {
            try request.setHeader("Content-Type", "text/plain")
            try request.outputHeaders()
            try request.write("ok\n")
            return
        }
        request.setBuffering(false)
        if let size = (param("ECHO_PAGE") ?? param("HTTP_X_ECHO_PAGE")).flatMap({ Int($0) }) {
            try request.setHeader("Content-Type", "text/html; charset=utf-8")
            try request.outputHeaders()
            var left = max(0, size)
            var offset = 0
            while left > 0 && !request.aborted {
                let n = min(left, 65536, samplePage.count - offset)
                try request.write(samplePage[offset..<offset + n])
                offset = (offset + n) % samplePage.count
                left -= n
            }
            return
        }
        if param("ECHO_PARAMS") == "1" {
            try request.setHeader("Content-Type", "text/plain")
            try request.outputHeaders()
            var out: [UInt8] = []
            for pair in request.environ.pairs.sorted(by: { $0.name.lexicographicallyPrecedes($1.name) }) {
                out += pair.name + [UInt8(ascii: "=")] + pair.value + [UInt8(ascii: "\n")]
            }
            try request.write(out)
            return
        }
        try request.setHeader("Content-Type", "application/octet-stream")
        try request.outputHeaders()
        let flushEachChunk = param("ECHO_FLUSH") == "1"
        while true {
            let chunk = try request.stdin.read(65536)
            if chunk.isEmpty { break }
            try request.write(chunk)
            if flushEachChunk { request.flush() }
        }
        if let hold = param("ECHO_HOLD_MS").flatMap({ UInt32($0) }) { usleep(hold * 1000) }
        if let after = (param("ECHO_AFTER_MS") ?? param("HTTP_X_ECHO_AFTER_MS")).flatMap({ UInt32($0) }) {
            request.finish()
            request.logger.notice("echo: answered; working \(after) ms more")
            usleep(after * 1000)
            request.logger.notice("echo: background work done")
        }
    }
}

struct EchoFilter: Handler {
    func process(_ request: Request) throws {
        request.setBuffering(false)
        try request.setHeader("Content-Type", "text/plain")
        try request.outputHeaders()
        try request.write(try request.stdin.readAll())
        if request.environ["ECHO_FLUSH"] == "1" { request.flush() }
        try request.write(try request.fastcgiData.readAll())
    }
}

struct EchoAuthorizer: Handler {
    func process(_ request: Request) throws {
        try request.clearHeaders()
        if request.environ.contains("HTTP_AUTHORIZATION") {
            try request.setHeader("Status", "200")
            try request.setHeader("Variable-AUTH_USER", request.environ["REMOTE_USER"] ?? "anonymous")
        } else {
            try request.setHeader("Status", "403")
        }
    }
}

struct EchoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo", abstract: "Echoes the request back (the contract the tests and benchmarks use).")

    @OptionGroup var options: ServerOptions

    func run() throws {
        let server = try options.makeServer(handlers: [
            .responder: .type(EchoResponder.self),
            .filter: .type(EchoFilter.self),
            .authorizer: .type(EchoAuthorizer.self),
        ]) { configuration in
            // For the process-manager tests: work done once per start, before
            // serving, never in a pool's workers (a migration's place).
            if getenv("ECHO_PREPARE") != nil {
                let logger = configuration.logger
                configuration.prepare = { logger.notice("echo: prepare ran in pid \(getpid())") }
            }
            if let echoTracer { configuration.tracer = echoTracer }
        }
        runningServer = server
        // For the process-manager tests: a worker that dies as it starts.
        if getenv("ECHO_TRAP_IN_WORKER") != nil && Server.isPoolWorker {
            fatalError("echo: asked to trap at start-up (ECHO_TRAP_IN_WORKER)")
        }
        try server.run()
    }
}

EchoCommand.main(ServerOptions.arguments())
