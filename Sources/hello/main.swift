// The smallest app: answers every request with a greeting.
import ArgumentParser
import FastCGI
import FastCGIOptions

struct Hello: Handler {
    func process(_ request: Request) throws {
        try request.setHeader("Content-Type", "text/plain; charset=utf-8")
        let name = try request.params["name"]?.string ?? "world"
        try request.write("Hello, \(name)!\n")
    }
}

struct HelloCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hello", abstract: "A FastCGI hello-world app.")

    @OptionGroup var options: ServerOptions

    func run() throws {
        try options.makeServer(handlers: [.responder: .type(Hello.self)]).run()
    }
}

HelloCommand.main(ServerOptions.arguments())
