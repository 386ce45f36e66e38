import ArgumentParser
import FastCGIClient
import Foundation

struct GetValuesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get-values", abstract: "Ask FCGI_GET_VALUES and print the answers as NAME=VALUE.")

    @Argument(help: "host:port or unix:/path of the FastCGI application.")
    var address: String

    @Argument(help: "Names to ask (default: FCGI_MAX_CONNS FCGI_MAX_REQS FCGI_MPXS_CONNS).")
    var names: [String] = []

    @Option(help: "Seconds to wait for the answer.")
    var timeout: Double = 5

    func run() throws {
        try reportingFailures(query)
    }

    private func query() throws {
        let asked = names.isEmpty ? ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"] : names
        let connection = try FastCGIConnection(to: address, timeout: .seconds(timeout))
        let values = try connection.getValues(asked)
        for name in asked { if let value = values[name] { print("\(name)=\(value)") } }
        if values.isEmpty {
            FileHandle.standardError.write(Data("fcgi: the application answered none of \(asked.joined(separator: ", "))\n".utf8))
        }
    }
}
