import ArgumentParser
import FastCGIClient
import Foundation

/// `fcgi ping`: a health probe for containers and load balancers, as PHP-FPM
/// users wrap `cgi-fcgi` in `timeout`: asks the app's ping page and succeeds
/// only for the expected answer, within a hard deadline.
struct PingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ping",
        abstract: "Ask the app's ping page (--ping-path) and exit 0 only if it answers as expected in time.")

    @Argument(help: "host:port or unix:/path of the FastCGI application.")
    var address: String

    @Option(help: "The ping page's path (the app's --ping-path).")
    var path: String = "/ping"

    @Option(help: "The answer expected (the body, without its trailing newline).")
    var expect: String = "pong"

    @Option(help: "Seconds for the whole probe, connection included; past it, exit 5.")
    var timeout: Double = 2

    @Flag(help: "Under a process manager: fail unless every worker of the pool sends its heartbeat, too.")
    var pool = false

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be above 0") }
    }

    func run() throws {
        Deadline.exit(after: timeout, code: 5, message: "fcgi: ping: no answer within \(timeout) s\n")
        try reportingFailures {
            let connection = try FastCGIConnection(to: address, timeout: .seconds(timeout))
            let uri = pool ? path + "?pool" : path
            let params = defaultParams(method: "GET", uri: uri, bodyLength: 0).sorted { $0.key < $1.key }
            let response = try connection.send(FastCGIRequest(params: params.map { NameValuePair($0.key, $0.value) }))
            let status = response.header("Status").flatMap { Int($0.prefix(3)) } ?? 200
            let body = String(decoding: response.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard response.protocolStatus == .requestComplete, status == 200, body == expect else {
                throw FCGIFailure("ping \(path): status \(status), answer \"\(body.prefix(80))\", expected \"\(expect)\"")
            }
            print(body)
        }
    }
}

/// A hard deadline for the whole process: a probe must never hang, whatever
/// blocks (a connect to a full backlog, a peer that accepts and stays silent).
enum Deadline {
    nonisolated(unsafe) private static var message: [UInt8] = []
    nonisolated(unsafe) private static var code: Int32 = 1

    static func exit(after seconds: Double, code: Int32, message text: String) {
        message = Array(text.utf8)
        Self.code = code
        signal(SIGALRM) { _ in
            _ = Deadline.message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            _exit(Deadline.code)
        }
        var timer = itimerval()
        timer.it_value.tv_sec = Int(seconds)
        timer.it_value.tv_usec = Int((seconds - seconds.rounded(.down)) * 1e6)
        setitimer(__itimer_which_t(ITIMER_REAL.rawValue), &timer, nil)
    }
}
