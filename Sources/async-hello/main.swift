// `hello` with an async handler: `?delay_ms=N` awaits `Task.sleep` for N ms
// before the greeting, holding no thread while it waits. The server runs as a
// swift-service-lifecycle `Service` in a `ServiceGroup`, which owns the signals:
// SIGTERM, SIGINT or SIGUSR1 shut it down gracefully (requests in flight finish,
// as `Server.exit()` lets them). With `--processes N` the process manager owns
// them instead.
import ArgumentParser
import FastCGI
import FastCGIOptions
import FastCGIService
import ServiceLifecycle

struct AsyncHello: AsyncHandler {
    /// The longest wait a request may ask for.
    static let maxDelay = 60_000

    func process(_ request: Request) async throws {
        let form = try await request.readForm()
        if let text = form["delay_ms"]?.string {
            guard let delay = Int(text), (0...Self.maxDelay).contains(delay) else {
                throw HTTPError(.badRequest, "delay_ms must be a whole number of milliseconds up to \(Self.maxDelay)")
            }
            try await Task.sleep(for: .milliseconds(delay))
        }
        try request.setHeader("Content-Type", "text/plain; charset=utf-8")
        try request.write("Hello, \(form["name"]?.string ?? "world")!\n")
    }
}

struct AsyncHelloCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "async-hello", abstract: "A FastCGI hello-world app with an async handler.")

    @OptionGroup var options: ServerOptions

    func run() async throws {
        let handlers: [Role: HandlerFactory] = [.responder: .type(AsyncHello.self)]
        guard options.processes == 0 else {
            let server = try options.makeServer(handlers: handlers)
            try await server.runUntilStopped()
            return
        }
        let server = try options.makeServer(handlers: handlers, handleSignals: false)
        let group = ServiceGroup(
            services: [FastCGIService(server)], gracefulShutdownSignals: [.sigterm, .sigint, .sigusr1],
            logger: server.logger)
        try await group.run()
    }
}

// `AsyncParsableCommand.main()` takes no arguments; ServerOptions rewrites them
// (the optional level of `--gzip`), so parse and run here.
do {
    let command = try AsyncHelloCommand.parse(ServerOptions.arguments())
    try await command.run()
} catch {
    AsyncHelloCommand.exit(withError: error)
}
