import Logging

/// An access log: one line per request, as a web server writes one, from the
/// app's side — the method, the path, the status, the body's bytes, how long
/// the handler took, the request's id, the worker and the peer, with a
/// millisecond timestamp. Off unless set (``Server/Configuration/accessLog``).
///
/// ```swift
/// var configuration = Server.Configuration(address: "unix:/run/app/app.sock")
/// configuration.accessLog = AccessLog(.file("/var/log/app/access.log"), format: .json)
/// ```
///
/// Text lines read as
/// `2026-12-05T05:30:01.123Z 192.0.2.7 GET /todos?page=2 200 1234 3.2ms id=17/1 worker=4711`;
/// JSON lines as
/// `{"time":"2026-12-05T05:30:01.123Z","peer":"192.0.2.7","method":"GET","path":"/todos?page=2","status":200,"bytes":1234,"duration_ms":3.2,"request_id":"17/1","worker":4711}`.
/// The id is the connection's number and the FastCGI request id, as the app's
/// own log lines carry them. A file is opened for appending before the
/// server drops privileges, and every worker of a pool appends whole lines to
/// it. The ping and status pages are not logged.
public struct AccessLog: Sendable, Hashable {
    /// Where the lines go.
    public enum Destination: Sendable, Hashable {
        /// The process's standard error (a pool's workers share the master's).
        case standardError
        /// A file, created if missing (mode 0640), appended to.
        case file(String)
    }

    /// How each line is written.
    public enum Format: String, Sendable, Hashable, CaseIterable {
        /// Space-separated fields, as a web server's access log.
        case text
        /// One JSON object per line (JSON Lines).
        case json
    }

    /// Where the lines go.
    public var destination: Destination
    /// How each line is written.
    public var format: Format

    /// An access log to `destination` in `format`.
    public init(_ destination: Destination = .standardError, format: Format = .text) {
        self.destination = destination
        self.format = format
    }
}

/// Writes a server's access log lines: one `write` per line, so lines from
/// several threads and processes never mix.
final class AccessLogWriter: Sendable {
    private let log: AccessLog
    /// The log file, opened once (before privileges are dropped, or at the
    /// first line).
    private let file = Guarded<FileDescriptor?>(nil)
    private let worker = ProcessSpawner.currentPID

    init(_ log: AccessLog) { self.log = log }

    /// Opens the file now, while the process may still be root (a no-op for
    /// standard error, or once open).
    func open() throws(SystemError) {
        guard case .file(let path) = log.destination, file.withLock({ $0 == nil }) else { return }
        let opened = try FileDescriptor.openForAppending(path)
        file.withLock { if $0 == nil { $0 = opened } }
    }

    /// Writes the line for a request that has ended; with `background`, for the
    /// work its handler did after `Request.finish()` (its duration counts from
    /// the handler's start).
    func record(_ request: Request, duration: Duration, background: Bool = false) {
        let environ = request.environ
        let method = environ["REQUEST_METHOD"] ?? "-"
        let path = environ["REQUEST_URI"] ?? environ["SCRIPT_NAME"] ?? "-"
        let peer = environ["REMOTE_ADDR"].flatMap { $0.isEmpty ? nil : $0 } ?? "-"
        let connection = request.logger[metadataKey: "connection"].map { "\($0)/" } ?? ""
        let id = "\(connection)\(request.requestID)"
        let milliseconds = (Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15)
        let ms = (milliseconds * 10).rounded() / 10
        let time = WallClock.timestamp()
        let status = request.responseStatusCode
        let line: String
        switch log.format {
        case .text:
            line =
                "\(time) \(peer) \(method) \(path) \(status) \(request.bytesWritten) \(ms)ms id=\(id) worker=\(worker)"
                + (background ? " background\n" : "\n")
        case .json:
            line =
                "{\"time\":\"\(time)\",\"peer\":\(Self.quoted(peer)),\"method\":\(Self.quoted(method)),"
                + "\"path\":\(Self.quoted(path)),\"status\":\(status),\"bytes\":\(request.bytesWritten),"
                + "\"duration_ms\":\(ms),\"request_id\":\"\(id)\",\"worker\":\(worker)"
                + (background ? ",\"background\":true}\n" : "}\n")
        }
        write(line)
    }

    private func write(_ line: String) {
        var line = line
        line.withUTF8 { bytes in
            switch log.destination {
            case .standardError:
                try? StandardStreams.writeAll(UnsafeRawBufferPointer(bytes), toError: true)
            case .file:
                try? open()  // a no-op once open (run() opens it first)
                file.withLock { file in try? file?.write(UnsafeRawBufferPointer(bytes)) }
            }
        }
    }

    /// `text` as a JSON string, escaped.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
