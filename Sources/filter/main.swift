// A filter: returns the FCGI_DATA file upper-cased, with a header naming the file.
// It reads the data stream first, before stdin, which libfcgi alone cannot do.
import ArgumentParser
import FastCGI
import FastCGIOptions

struct UppercaseFilter: Handler {
    func process(_ request: Request) throws {
        let data = try request.fastcgiData.readAll()
        let body = try request.stdin.readAll()
        try request.setHeader("Content-Type", "text/plain")
        try request.setHeader("X-Filtered-File", request.environ["SCRIPT_FILENAME"] ?? "unknown")
        try request.setHeader("X-Stdin-Bytes", "\(body.count)")
        try request.write(data.map { $0 >= 97 && $0 <= 122 ? $0 - 32 : $0 })
    }
}

struct FilterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "filter", abstract: "A FastCGI filter that upper-cases the data file.")

    @OptionGroup var options: ServerOptions

    func run() throws {
        try options.makeServer(handlers: [.filter: .type(UppercaseFilter.self)]).run()
    }
}

FilterCommand.main(ServerOptions.arguments())
