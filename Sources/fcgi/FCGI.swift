// `fcgi`: talk to any FastCGI application without a web server.
import ArgumentParser

@main
struct FCGI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fcgi",
        abstract: "Talk to any FastCGI application: send a request, query FCGI_GET_VALUES, load-test it, probe its health.",
        subcommands: [RequestCommand.self, GetValuesCommand.self, BenchCommand.self, PingCommand.self])
}
