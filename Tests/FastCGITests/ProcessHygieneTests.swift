import FastCGIClient
import Foundation
import Testing

@testable import FastCGI

#if canImport(Glibc)
    import Glibc
#endif

/// The listener's ownership and the process's signals: close-on-exec, no
/// takeover of a live unix socket, one signal pipe however many servers.
@Suite("Process hygiene: the listener and the signals")
struct ProcessHygieneTests {
    @Test("the listening socket is close-on-exec, TCP and unix")
    func closeOnExec() throws {
        let directory = try TempDirectory.make()
        for address: ListenAddress in ["127.0.0.1:0", .unix(path: "\(directory.path)/a.sock")] {
            let fd = try Socket.listen(on: address)
            defer { close(fd) }
            #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0, "\(address)")
        }
    }

    @Test("a live unix socket is not taken over: the second start fails clearly, the first serves on")
    func liveSocket() throws {
        let first = try RunningApp("echo", unix: true)
        let path = String(first.address.dropFirst("unix:".count))
        let second = try ChildProcess(Paths.app("echo"), ["--bind", first.address])
        #expect(second.waitForExit(timeout: 20) != 0)
        #expect(second.stderrText.contains("another process serves this socket; not taking it over"), "\(second.stderrText)")
        #expect(try first.send(.http(method: "POST", body: [5])).body == [5])
        #expect(FileManager.default.fileExists(atPath: path))
    }

    @Test("a stale socket file is replaced; a file that is not a socket is refused and kept")
    func staleAndForeign() throws {
        let directory = try TempDirectory.make()
        let stale = "\(directory.path)/stale.sock"
        // A socket file nothing listens on: what a crashed instance leaves.
        let fd = try Socket.listen(on: .unix(path: stale))
        close(fd)
        #expect(FileManager.default.fileExists(atPath: stale))
        let app = try ChildProcess(Paths.app("echo"), ["--bind", "unix:\(stale)"])
        defer { app.stop() }
        try Net.waitUntilListening("unix:\(stale)")

        let foreign = "\(directory.path)/notes.txt"
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: foreign))
        #expect { try Socket.listen(on: .unix(path: foreign)) } throws: {
            ($0 as? ServerError)?.cause == .addressInUse && "\($0)".contains("is not a socket")
        }
        #expect(try String(contentsOfFile: foreign, encoding: .utf8) == "keep me")
    }

    @Test("two subscribers in one process both hear a signal; neither reader is left at end of file")
    func oneSignalPipe() throws {
        let first = try SignalPipe(routing: [SIGUSR2])
        let second = try SignalPipe(routing: [SIGUSR2])
        // Before one hub, the second replaced the first's pipe: the first's
        // reader saw end of file for ever, and its thread spun.
        #expect(try FileDescriptor.waitReadable([first.reader, second.reader], timeoutMilliseconds: 50) == [false, false])
        raise(SIGUSR2)
        #expect(first.next(timeout: 10) == [SIGUSR2])
        #expect(second.next(timeout: 10) == [SIGUSR2])
        #expect(try FileDescriptor.waitReadable([first.reader, second.reader], timeoutMilliseconds: 50) == [false, false])
    }
}
