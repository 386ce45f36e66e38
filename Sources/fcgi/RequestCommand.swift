import ArgumentParser
import FastCGIClient
import FastCGIWire
import Foundation

struct RequestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request",
        abstract: "Send one request and print the response (the body is read from stdin when it is not a terminal).")

    @Argument(help: "host:port or unix:/path of the FastCGI application.")
    var address: String

    @Option(name: .shortAndLong, help: "A param NAME=VALUE (repeatable); overrides the defaults.")
    var param: [String] = []

    @Option(help: "REQUEST_METHOD.")
    var method: String = "GET"

    @Option(help: "REQUEST_URI, with the query string.")
    var uri: String = "/"

    @Option(help: "responder, authorizer or filter.")
    var role: String = "responder"

    @Option(help: "A file sent as FCGI_DATA (filter role).")
    var data: String?

    @Flag(name: .shortAndLong, help: "Print the status line and headers, like curl -i.")
    var include = false

    @Option(help: "Seconds to wait for the application.")
    var timeout: Double = 30

    @Flag(help: "Exit 22 (as curl --fail) when the response's status is 400 or above; the response is still printed.")
    var fail = false

    func run() throws {
        try reportingFailures(send)
    }

    private func send() throws {
        guard let role = ["responder": Role.responder, "authorizer": .authorizer, "filter": .filter][role] else {
            throw ValidationError("--role must be responder, authorizer or filter")
        }
        let body: [UInt8] = isatty(0) == 1 ? [] : Array(FileHandle.standardInput.readDataToEndOfFile())
        let dataBytes = try data.map { Array(try Data(contentsOf: URL(fileURLWithPath: $0))) }
        let params = try requestParams(defaultParams(method: method, uri: uri, bodyLength: body.count), overriddenBy: param)
        let request = FastCGIRequest(
            role: role, params: params, stdin: body,
            data: role == .filter ? (dataBytes ?? []) : dataBytes)
        let connection = try FastCGIConnection(to: address, timeout: .seconds(timeout))
        var printer = ResponsePrinter(include: include)
        let response = try connection.send(request) { printer.print($0) }
        printer.finish()
        if response.protocolStatus != .requestComplete {
            throw FCGIFailure("the application refused the request: \(response.protocolStatus)", code: 3)
        }
        let status = response.header("Status").flatMap { Int($0.prefix(3)) } ?? 200
        if fail && status >= 400 {
            throw FCGIFailure("the application answered \(response.header("Status") ?? "\(status)")", code: 22)
        }
    }
}

/// Prints a response as its records arrive (a streamed body shows as it comes):
/// stderr at once, the body once the CGI headers are complete, with `-i` an HTTP
/// status line and the headers before it.
struct ResponsePrinter {
    let include: Bool
    private var head: [UInt8]? = []

    init(include: Bool) { self.include = include }

    mutating func print(_ record: Record) {
        switch record.type {
        case .stderr: FileHandle.standardError.write(Data(record.content))
        case .stdout:
            guard var pending = head else { return FileHandle.standardOutput.write(Data(record.content)) }
            pending += record.content
            guard let end = CGIResponse.headerEnd(in: pending) else {
                head = pending
                return
            }
            head = nil
            if include { printHead(CGIResponse(parsing: Array(pending[..<end.body]))) }
            FileHandle.standardOutput.write(Data(pending[end.body...]))
        default: break
        }
    }

    /// Prints the headers (with `-i`) of a response that ended without a blank
    /// line: it is all headers, no body.
    mutating func finish() {
        if let pending = head, !pending.isEmpty, include { printHead(CGIResponse(parsing: pending)) }
        head = nil
    }

    private func printHead(_ response: CGIResponse) {
        var text = "HTTP/1.1 \(response.header("Status") ?? "200 OK")\r\n"
        for field in response.fields where field.name.lowercased() != "status" { text += "\(field.name): \(field.value)\r\n" }
        FileHandle.standardOutput.write(Data((text + "\r\n").utf8))
    }
}

/// `defaults` with each `-p NAME=VALUE` applied (an empty value is allowed:
/// `NAME=`), as pairs sorted by name.
func requestParams(_ defaults: [String: String], overriddenBy overrides: [String]) throws -> [NameValuePair] {
    var params = defaults
    for item in overrides {
        let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("-p takes NAME=VALUE, not \"\(item)\"") }
        params[String(parts[0])] = String(parts[1])
    }
    return params.sorted { $0.key < $1.key }.map { NameValuePair($0.key, $0.value) }
}

/// The params nginx's fastcgi_params sends, for a request to `uri`.
func defaultParams(method: String, uri: String, bodyLength: Int) -> [String: String] {
    let parts = uri.split(separator: "?", maxSplits: 1)
    let path = parts.first.map(String.init) ?? "/"
    return [
        "QUERY_STRING": parts.count > 1 ? String(parts[1]) : "", "REQUEST_METHOD": method,
        "CONTENT_TYPE": bodyLength > 0 ? "application/octet-stream" : "", "CONTENT_LENGTH": bodyLength > 0 ? "\(bodyLength)" : "",
        "SCRIPT_NAME": path, "REQUEST_URI": uri, "DOCUMENT_URI": path, "DOCUMENT_ROOT": "/var/www/html",
        "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_SCHEME": "http", "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "fcgi-cli", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "54321", "SERVER_ADDR": "127.0.0.1",
        "SERVER_PORT": "80", "SERVER_NAME": "localhost", "SCRIPT_FILENAME": "/var/www/html" + path,
        "HTTP_HOST": "localhost", "HTTP_USER_AGENT": "fcgi-cli/1.0", "HTTP_ACCEPT": "*/*",
    ]
}

/// A failure with a message for the user and an exit code.
struct FCGIFailure: Error, CustomStringConvertible {
    var description: String
    var code: Int32

    init(_ message: String, code: Int32 = 1) {
        description = message
        self.code = code
    }

    init(_ error: ClientError) {
        description = error.reason
        switch error.kind {
        case .badAddress: code = 2
        case .connectionRefused: code = 4
        case .timeout: code = 5
        case .protocolViolation: code = 6
        case .connectionClosed, .io: code = 7
        }
    }
}

/// Runs `body`, turning an ``FCGIFailure`` into a message on stderr and its exit code.
func reportingFailures(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let failure as FCGIFailure {
        FileHandle.standardError.write(Data("fcgi: \(failure.description)\n".utf8))
        throw ExitCode(failure.code)
    } catch let error as ClientError {
        FileHandle.standardError.write(Data("fcgi: \(error.reason)\n".utf8))
        throw ExitCode(FCGIFailure(error).code)
    }
}
