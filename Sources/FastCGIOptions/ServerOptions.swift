import ArgumentParser
import FastCGI
import FastCGIWire
import Logging

/// The command line of a FastCGI app, for swift-argument-parser: every
/// setting an operator changes per deployment (`--bind`, `--processes`,
/// `--threading-level`, timeouts, socket permissions, `--log-level`), as the
/// example apps take them.
///
/// ```swift
/// import ArgumentParser
/// import FastCGI
/// import FastCGIOptions
///
/// @main
/// struct App: ParsableCommand {
///     @OptionGroup var options: ServerOptions
///
///     func run() throws {
///         try options.makeServer(handlers: [.responder: .closure { try $0.write("hi") }]).run()
///     }
/// }
/// ```
///
/// Or, without a command of its own: `let options = try ServerOptions.parse()`
/// and then `options.configuration()`.
public struct ServerOptions: ParsableArguments {
    /// `--bind ADDRESS`: `host:port`, `:port` or `unix:/path`; none means fd 0
    /// (spawn-fcgi) or CGI.
    @Option(name: .long, help: "Listen on host:port, :port or unix:/path (default: fd 0, or CGI).")
    public var bind: String?

    /// `--threading-level 0|1|2`.
    @Option(name: .long, help: "0: one request at a time; 1: a thread per connection; 2: multiplexed.")
    public var threadingLevel: Int = 1

    /// `--workers N`.
    @Option(name: .long, help: "Worker threads at threading levels 1 and 2.")
    public var workers: Int = 10

    /// `--async-handler-limit N`: at most N async handlers at once
    /// (``FastCGI/Server/Configuration/asyncHandlerLimit``; default: no bound).
    @Option(name: .long, help: "Run at most N async handlers at once (default: no bound).")
    public var asyncHandlerLimit: Int?

    /// `--max-requests N`.
    @Option(name: .long, help: "Stop after this many requests (0: never).")
    public var maxRequests: Int = 0

    /// `--value NAME=VALUE`, repeatable: answers for FCGI_GET_VALUES (`params`).
    @Option(name: .customLong("value"), help: "An FCGI_GET_VALUES answer, NAME=VALUE (repeatable).")
    public var values: [String] = []

    /// `--gzip [LEVEL]`: serve through ``GZipRequest`` at LEVEL (0-9; 6 when the
    /// level is left out, see ``arguments(_:)``).
    @Option(name: .long, help: ArgumentHelp("Gzip responses the client accepts, at LEVEL 0-9 (default 6).", valueName: "level"))
    public var gzip: Int?

    /// `--log-level LEVEL`: trace, debug, info (default), notice, warning, error, critical.
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error or critical (default info).")
    public var logLevel: String = "info"

    /// `--access-log PATH`: one line per request to PATH (`-`: standard error).
    @Option(name: .long, help: "Write one line per request to this file (- for standard error).")
    public var accessLog: String?

    /// `--access-log-format text|json`.
    @Option(name: .long, help: "The access log's lines: text (default) or json (JSON Lines).")
    public var accessLogFormat: String = "text"

    /// `--file-offload x-accel-redirect:ROOT:LOCATION` (nginx) or
    /// `--file-offload x-sendfile` (Apache, lighttpd): how
    /// `Request.offload(file:)` hands files to the web server.
    @Option(
        name: .long,
        help: "Hand files to the web server: x-accel-redirect:ROOT:LOCATION (nginx) or x-sendfile (Apache, lighttpd).")
    public var fileOffload: String?

    /// The offload `--file-offload` names.
    func parsedFileOffload() throws -> FileOffload? {
        guard let fileOffload else { return nil }
        if fileOffload == "x-sendfile" { return .sendfile }
        let parts = fileOffload.split(separator: ":", maxSplits: 2).map(String.init)
        guard parts.count == 3, parts[0] == "x-accel-redirect", parts[1].hasPrefix("/"), parts[2].hasPrefix("/") else {
            throw ValidationError("--file-offload must be x-accel-redirect:/ROOT:/LOCATION/ or x-sendfile")
        }
        return .accelRedirect(root: parts[1], location: parts[2])
    }

    /// `--ping-path PATH`: answer PATH with `pong` (``Monitoring/pingPath``).
    @Option(name: .long, help: "Answer this path with \"pong\" without calling a handler.")
    public var pingPath: String?

    /// `--status-path PATH`: the status page (``Monitoring/statusPath``).
    @Option(name: .long, help: "Serve the status page (text, or JSON with ?json) at this path.")
    public var statusPath: String?

    /// `--slow-request SECONDS`: log requests running longer (``Monitoring/slowRequestThreshold``).
    @Option(name: .long, help: "Log requests running longer than this many seconds.")
    public var slowRequest: Double?

    /// `--request-timeout SECONDS`: end requests running longer (``Monitoring/requestTimeout``).
    @Option(name: .long, help: "End requests running longer than this many seconds (504 if nothing was sent).")
    public var requestTimeout: Double?

    /// `--input-timeout SECONDS`: end a request whose body stops arriving for this
    /// long (``ConnectionLimits/inputTimeout``; 0 turns it off).
    @Option(name: .long, help: "End a request whose body stops arriving for this many seconds (default 60; 0: never).")
    public var inputTimeout: Double?

    /// `--send-timeout SECONDS`: close a connection whose peer takes no output
    /// for this long (``ConnectionLimits/sendTimeout``; 0 turns it off).
    @Option(name: .long, help: "Close a connection whose peer reads no output for this many seconds (default 60; 0: never).")
    public var sendTimeout: Double?

    /// `--backlog N`: the listening socket's queue of connections not yet
    /// accepted (``ConnectionLimits/backlog``; default: the system's somaxconn).
    @Option(name: .long, help: "Connections the kernel queues before they are accepted (default: net.core.somaxconn).")
    public var backlog: Int?

    /// `--idle-timeout SECONDS`: close a kept connection with nothing in flight
    /// after this long (``ConnectionLimits/idleTimeout``; 0 turns it off).
    @Option(name: .long, help: "Close a kept connection idle for this many seconds (default 300; 0: never).")
    public var idleTimeout: Double?

    /// `--processes N`: run as a process manager keeping N worker processes.
    @Option(
        name: .long,
        help:
            "Keep N worker processes on the socket, replaced when they die or reach --max-requests; SIGHUP/SIGUSR2 reload (0: one process)."
    )
    public var processes: Int = 0

    /// `--max-worker-rss MIB`: with processes, replace a worker past this size.
    @Option(
        name: .long,
        help: ArgumentHelp("With --processes: replace a worker whose resident memory passes MIB mebibytes.", valueName: "MiB"))
    public var maxWorkerRss: Int?

    /// `--worker-timeout SECONDS`: with processes, replace a serving worker
    /// whose heartbeat stops for this long (default 30; 0: never).
    @Option(
        name: .long,
        help: "With --processes: replace a worker that sends no heartbeat for this many seconds (default 30; 0: never).")
    public var workerTimeout: Double?

    /// `--binary PATH`: with processes, the program workers start from
    /// (``FastCGI/Server/Configuration/binary``; default: the path this one was
    /// started as).
    @Option(
        name: .long,
        help: "With --processes: start workers (and reloads) from this program (default: the path this was started as).")
    public var binary: String?

    /// `--user NAME`: the user the workers (or the one process) serve as,
    /// when started as root (``FastCGI/Server/Configuration/user``).
    @Option(name: .long, help: "Serve as this user (name or number) once the socket is open; needs root (as nginx's user).")
    public var user: String?

    /// `--group NAME`: the group for `--user` (default: the user's own).
    @Option(name: .long, help: "The group to serve as (name or number; default: --user's own group).")
    public var group: String?

    /// Largest form body `Request.params` reads (default 16 MiB); above it, 413.
    @Option(name: .long, help: "Largest form body parsed, in bytes (default 16 MiB); a larger one gets 413.")
    public var maxFormBytes: Int?

    /// `--shutdown-timeout SECONDS`: how long a stop waits for requests in flight.
    @Option(name: .long, help: "On SIGTERM/SIGINT, wait this many seconds for requests in flight (default 10).")
    public var shutdownTimeout: Double = 10

    /// `--socket-name NAME`: which socket-activated socket to serve.
    @Option(name: .long, help: "With systemd socket activation and several sockets, serve the one with this name.")
    public var socketName: String?

    @Option(name: .long, help: "Mode of the unix socket --bind creates, in octal (e.g. 0660), as spawn-fcgi -M.")
    public var socketMode: String?

    @Option(name: .long, help: "Owner (user name or number) of the unix socket --bind creates, as spawn-fcgi -U.")
    public var socketOwner: String?

    @Option(name: .long, help: "Group (name or number) of the unix socket --bind creates, as spawn-fcgi -G.")
    public var socketGroup: String?

    /// Creates the default options.
    public init() {}

    /// Checks the values.
    public func validate() throws {
        guard (0...2).contains(threadingLevel) else {
            throw ValidationError("--threading-level must be 0, 1 or 2")
        }
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
        if let asyncHandlerLimit, asyncHandlerLimit < 1 {
            throw ValidationError("--async-handler-limit must be at least 1")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard maxRequests >= 0 else { throw ValidationError("--max-requests must not be negative") }
        guard AccessLog.Format(rawValue: accessLogFormat) != nil else {
            throw ValidationError("--access-log-format must be text or json")
        }
        _ = try parsedFileOffload()
        if let bind { _ = try Endpoint(parsing: bind) }
        guard shutdownTimeout >= 0 else { throw ValidationError("--shutdown-timeout must not be negative") }
        if let backlog, backlog < 1 { throw ValidationError("--backlog must be at least 1") }
        for (name, seconds) in [
            ("--input-timeout", inputTimeout), ("--idle-timeout", idleTimeout), ("--send-timeout", sendTimeout),
            ("--worker-timeout", workerTimeout),
        ] {
            if let seconds, !(seconds >= 0) { throw ValidationError("\(name) must not be negative") }
        }
        for (name, seconds) in [("--slow-request", slowRequest), ("--request-timeout", requestTimeout)] {
            if let seconds, !(seconds > 0) { throw ValidationError("\(name) takes a number of seconds above 0") }
        }
        guard processes >= 0 else { throw ValidationError("--processes must not be negative") }
        if let maxWorkerRss, maxWorkerRss <= 0 { throw ValidationError("--max-worker-rss takes a number of MiB above 0") }
        if let maxFormBytes, maxFormBytes < 0 { throw ValidationError("--max-form-bytes must not be negative") }
        if let gzip, !(0...9).contains(gzip) { throw ValidationError("--gzip takes a level from 0 to 9") }
        for value in values where !value.contains("=") {
            throw ValidationError("--value takes NAME=VALUE, not \"\(value)\"")
        }
    }

    /// The options as a server configuration (the times as `Duration`).
    public func configuration(requestType: Request.Type = Request.self, handleSignals: Bool = true) throws
        -> Server.Configuration
    {
        var configuration = Server.Configuration()
        configuration.maxRequests = maxRequests
        configuration.params = values.isEmpty ? nil : managementParams
        configuration.requestType = requestType
        configuration.threadingLevel = ThreadingLevel(rawValue: threadingLevel) ?? 1
        configuration.workers = workers
        configuration.asyncHandlerLimit = asyncHandlerLimit
        configuration.address = try bind.map { try Endpoint(parsing: $0) }
        if let maxFormBytes { configuration.limits.maxFormBytes = maxFormBytes }
        if let inputTimeout { configuration.connectionLimits.inputTimeout = inputTimeout > 0 ? .seconds(inputTimeout) : nil }
        if let idleTimeout { configuration.connectionLimits.idleTimeout = idleTimeout > 0 ? .seconds(idleTimeout) : nil }
        if let sendTimeout { configuration.connectionLimits.sendTimeout = sendTimeout > 0 ? .seconds(sendTimeout) : nil }
        if let backlog { configuration.connectionLimits.backlog = backlog }
        if let level = Logger.Level(rawValue: logLevel) { configuration.logger.logLevel = level }
        configuration.shutdownTimeout = .seconds(shutdownTimeout)
        configuration.handleSignals = handleSignals
        configuration.monitoring.pingPath = pingPath
        configuration.monitoring.statusPath = statusPath
        configuration.monitoring.slowRequestThreshold = slowRequest.map { .seconds($0) }
        configuration.monitoring.requestTimeout = requestTimeout.map { .seconds($0) }
        configuration.activationSocketName = socketName
        configuration.socketPermissions = try socketPermissions()
        configuration.processes = processes
        configuration.maxWorkerMemory = maxWorkerRss.map { $0 << 20 }
        configuration.binary = binary
        configuration.accessLog = accessLog.map { path in
            AccessLog(
                path == "-" ? .standardError : .file(path), format: AccessLog.Format(rawValue: accessLogFormat) ?? .text)
        }
        configuration.fileOffload = try parsedFileOffload()
        configuration.user = user
        configuration.group = group
        if let workerTimeout { configuration.workerTimeout = workerTimeout > 0 ? .seconds(workerTimeout) : nil }
        return configuration
    }

    private var managementParams: [String: String] {
        var params: [String: String] = [:]
        for value in values {
            let parts = value.split(separator: "=", maxSplits: 1)
            params[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return params
    }

    /// A server with these options and `handlers`; `handleSignals` as
    /// ``FastCGI/Server/handleSignals`` (false when a `ServiceGroup` owns them);
    /// `configure` changes the configuration the options made (a
    /// ``FastCGI/Server/Configuration/prepare`` hook, a limit the command line
    /// has no option for).
    public func makeServer(
        handlers: [Role: HandlerFactory], requestType: Request.Type = Request.self, handleSignals: Bool = true,
        configure: (inout Server.Configuration) -> Void = { _ in }
    ) throws -> Server {
        var handlers = handlers
        var requestType = requestType
        if let level = gzip {
            if !(requestType is GZipRequest.Type) { requestType = GZipRequest.self }
            handlers = handlers.mapValues { inner in
                .closure { request in
                    try (request as? GZipRequest)?.setCompressionLevel(level)
                    inner(request)
                }
            }
        }
        var configuration = try configuration(requestType: requestType, handleSignals: handleSignals)
        configure(&configuration)
        return Server(factories: handlers, configuration: configuration)
    }

    /// `--socket-mode`, `--socket-owner`, `--socket-group`.
    func socketPermissions() throws -> SocketPermissions {
        var mode: UInt32?
        if let text = socketMode {
            guard let value = UInt32(text, radix: 8), value <= 0o7777 else {
                throw ValidationError("--socket-mode \(text): expected an octal mode such as 0660")
            }
            mode = value
        }
        return SocketPermissions(mode: mode, owner: socketOwner, group: socketGroup)
    }
}

extension ServerOptions {
    /// The process's arguments with a bare `--gzip` (no level after it) spelled
    /// `--gzip=6`, since ArgumentParser options always take a value.
    public static func arguments(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> [String] {
        var out: [String] = []
        for (index, argument) in arguments.enumerated() {
            let next = index + 1 < arguments.count ? arguments[index + 1] : nil
            if argument == "--gzip" && next.flatMap({ Int($0) }) == nil {
                out.append("--gzip=6")
            } else {
                out.append(argument)
            }
        }
        return out
    }
}
