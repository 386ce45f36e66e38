import FastCGIClient
import Testing

@testable import FastCGI

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Acceptor: every connection accepted ready to serve")
struct AcceptorTests {
    /// Accepts one connection on `address` and returns what its socket is set to.
    /// With `early`, the peer connects before the acceptor sets the listener up.
    func acceptOne(
        on address: ListenAddress, early: Bool = false, connectTo: (Int32) -> String
    ) throws -> ConnectionOptions {
        let listenFD = try Socket.listen(on: address)
        let listener = FileDescriptor(adopting: listenFD)
        let earlyClient = early ? try FastCGIConnection(to: connectTo(listenFD)) : nil
        let acceptor = Acceptor(listening: listener.raw, receiveTimeout: 0.01)
        let client = try earlyClient ?? FastCGIConnection(to: connectTo(listenFD))
        defer { _ = client }
        // The listener is non-blocking: wait for the connection first.
        for _ in 0..<1000 {
            let accepted: FileDescriptor
            do {
                accepted = try acceptor.accept().descriptor
            } catch {
                guard error.wouldBlock else { throw error }
                MonotonicClock.sleep(seconds: 0.001)
                continue
            }
            return accepted.connectionOptions
        }
        throw TestFailure("no connection to accept")
    }

    /// Whether `seconds` reads back as the 10 ms asked for (the kernel keeps
    /// timeouts in clock ticks: 10 to 12 ms).
    func isLinger(_ seconds: Double) -> Bool {
        seconds >= 0.01 && seconds < 0.02
    }

    @Test("TCP: the timeouts and TCP_NODELAY (set once, on the listener), close-on-exec")
    func tcp() throws {
        let options = try acceptOne(on: .tcp(host: "127.0.0.1", port: 0)) { fd in
            let port: UInt16 = Socket.localPort(fd) ?? 0
            return "127.0.0.1:" + String(port)
        }
        #expect(options.sendTimeout == Acceptor.sendTimeout)
        #expect(isLinger(options.receiveTimeout))
        #expect(options.noDelay)
        #expect(options.closeOnExec)
    }

    @Test("TCP: a connection queued before the listener had the options gets them all the same")
    func tcpEarly() throws {
        let options = try acceptOne(on: .tcp(host: "127.0.0.1", port: 0), early: true) { fd in
            let port: UInt16 = Socket.localPort(fd) ?? 0
            return "127.0.0.1:" + String(port)
        }
        #expect(options.sendTimeout == Acceptor.sendTimeout)
        #expect(isLinger(options.receiveTimeout))
        #expect(options.noDelay)
    }

    @Test("unix: the timeouts (set per connection: a unix socket passes none on), close-on-exec")
    func unix() throws {
        let path = "/tmp/swift-fcgi-acceptor-\(getpid()).sock"
        defer { unlink(path) }
        let options = try acceptOne(on: .unix(path: path)) { _ in "unix:\(path)" }
        #expect(options.sendTimeout == Acceptor.sendTimeout)
        #expect(isLinger(options.receiveTimeout))
        #expect(options.closeOnExec)
    }
}
