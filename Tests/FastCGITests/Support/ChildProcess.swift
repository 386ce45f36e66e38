import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A process started by a test: output captured to files, always stopped (SIGTERM,
/// then SIGKILL) when the test lets go of it, so no child outlives its test.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    let directory: URL
    let stdoutURL: URL
    let stderrURL: URL

    /// Starts `executable` (a path, or a name looked up on PATH).
    init(
        _ executable: String, _ arguments: [String] = [], environment: [String: String]? = nil,
        stdin: URL? = nil, directory: URL? = nil
    ) throws {
        self.directory = try directory ?? TempDirectory.make()
        stdoutURL = self.directory.appendingPathComponent("stdout-\(UUID().uuidString.prefix(8))")
        stderrURL = self.directory.appendingPathComponent("stderr-\(UUID().uuidString.prefix(8))")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: ChildProcess.resolve(executable))
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        process.standardInput = try stdin.map { try FileHandle(forReadingFrom: $0) } ?? FileHandle.nullDevice
        try process.run()
    }

    deinit { stop() }

    static func resolve(_ name: String) -> String {
        if name.contains("/") { return name }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for dir in path.split(separator: ":") + ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return name
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// Sends `signal` to the process.
    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits until the process exits; its status, or nil after `timeout` seconds.
    @discardableResult
    func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline { return nil }
            usleep(10_000)
        }
        return process.terminationStatus
    }

    /// Stops the process: SIGTERM, then SIGKILL after 3 s.
    func stop() {
        guard process.isRunning else { return }
        signal(SIGTERM)
        if waitForExit(timeout: 3) == nil {
            signal(SIGKILL)
            waitForExit(timeout: 3)
        }
    }

    var stdoutText: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }
    var stderrText: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }
    var stdoutData: Data { (try? Data(contentsOf: stdoutURL)) ?? Data() }

    /// Runs a command to completion (bounded by `timeout`) and returns its status
    /// and output.
    static func run(
        _ executable: String, _ arguments: [String] = [], environment: [String: String]? = nil,
        stdin: URL? = nil, timeout: Double = 30
    ) throws -> (status: Int32, stdout: Data, stderr: String) {
        let child = try ChildProcess(executable, arguments, environment: environment, stdin: stdin)
        guard let status = child.waitForExit(timeout: timeout) else {
            child.stop()
            throw TestFailure("\(executable) \(arguments) did not finish within \(timeout) s")
        }
        return (status, child.stdoutData, child.stderrText)
    }
}

/// A failure inside test support, with a readable reason.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Fresh directories under /tmp for sockets, configs and captured output, removed
/// when the test process exits (every child that used them is stopped by then).
enum TempDirectory {
    static func make() throws -> URL {
        let url = URL(fileURLWithPath: "/tmp/swift-fcgi-tests/\(UUID().uuidString.prefix(12))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        let first = madeDirectories.withLock { made in
            made.append(url.path)
            return made.count == 1
        }
        if first { atexit { removeMadeDirectories() } }
        return url
    }
}

/// The directories ``TempDirectory`` made in this process.
private let madeDirectories = Mutex<[String]>([])

private func removeMadeDirectories() {
    for path in madeDirectories.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
}
