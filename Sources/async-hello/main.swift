// `hello` with an async handler: `?delay_ms=N` awaits `Task.sleep` for N ms
// before the greeting, holding no thread while it waits.
import ArgumentParser
import ExampleSupport
import FastCGI

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

struct AsyncHelloCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "async-hello", abstract: "A FastCGI hello-world app with an async handler.")

    @OptionGroup var options: ServerOptions

    func run() throws {
        try options.makeServer(handlers: [.responder: .type(AsyncHello.self)]).run()
    }
}

AsyncHelloCommand.main(ServerOptions.arguments())
