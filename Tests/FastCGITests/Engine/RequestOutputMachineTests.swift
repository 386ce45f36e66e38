import Testing

@testable import FastCGI

/// The output rules both engines share, checked byte for byte without a socket.
@Suite("RequestOutputMachine: a request's output and its end")
struct RequestOutputMachineTests {
    /// One record as the spec lays it out (version 1, padded to 8), written out
    /// independently of the library's encoder.
    static func record(_ type: UInt8, _ id: UInt16 = 1, _ content: [UInt8] = []) -> [UInt8] {
        let padding = (8 - content.count % 8) % 8
        return [1, type, UInt8(id >> 8), UInt8(id & 0xFF), UInt8(content.count >> 8), UInt8(content.count & 0xFF)]
            + [UInt8(padding), 0] + content + [UInt8](repeating: 0, count: padding)
    }
    static let stdout: UInt8 = 6
    static let stderr: UInt8 = 7
    static func endRequest(_ id: UInt16 = 1) -> [UInt8] { record(3, id, [0, 0, 0, 0, 0, 0, 0, 0]) }

    static func machine(batch: Int = 64, maxHeld: Int = 1 << 20) -> RequestOutputMachine {
        RequestOutputMachine(requestID: 1, batchSize: batch, maxHeldBeforeBodyEnd: maxHeld)
    }

    static func write(
        _ m: inout RequestOutputMachine, _ text: String, toError: Bool = false, push: Bool = false
    ) -> RequestOutputMachine.Action {
        Array(text.utf8).withUnsafeBytes { m.write($0, toError: toError, push: push) }
    }

    @Test("a small response leaves in one piece with its end")
    func smallResponse() {
        var m = Self.machine()
        m.stdinDidEnd()
        #expect(Self.write(&m, "hi") == .held)
        #expect(
            m.end(.finished)
                == [1, 6, 0, 1, 0, 2, 6, 0, 0x68, 0x69, 0, 0, 0, 0, 0, 0]  // STDOUT "hi", padded
                + [1, 6, 0, 1, 0, 0, 0, 0]  // stdout's end
                + [1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])  // END_REQUEST, complete
        #expect(m.end(.finished) == nil, "a request ends once")
        #expect(Self.write(&m, "late") == .dropped)
    }

    @Test("a full batch goes out at once; stderr keeps its place and is closed")
    func batchesAndStderr() {
        var m = Self.machine(batch: 40)  // record bytes, headers and padding included
        m.stdinDidEnd()
        #expect(Self.write(&m, "abc") == .held)
        #expect(Self.write(&m, "oops", toError: true) == .held)
        let text = String(repeating: "x", count: 16)
        #expect(
            Self.write(&m, text)
                == .send(
                    Self.record(Self.stdout, 1, Array("abc".utf8)) + Self.record(Self.stderr, 1, Array("oops".utf8))
                        + Self.record(Self.stdout, 1, Array(text.utf8))))
        #expect(m.end(.finished) == Self.record(Self.stdout) + Self.record(Self.stderr) + Self.endRequest())
    }

    @Test("until stdin ends, nothing goes out; the flush made meanwhile is due after")
    func heldForTheBody() {
        var m = Self.machine(batch: 4)
        #expect(Self.write(&m, "head") == .held, "a full batch waits for the body")
        #expect(m.flush() == .held)
        #expect(!m.hasDueFlush)
        #expect(m.takeDueFlush() == [])
        m.stdinDidEnd()
        #expect(m.hasDueFlush)
        #expect(m.takeDueFlush() == Self.record(Self.stdout, 1, Array("head".utf8)))
        #expect(m.takeDueFlush() == [], "taken once")
        #expect(Self.write(&m, "more", push: true) == .send(Self.record(Self.stdout, 1, Array("more".utf8))))
    }

    @Test("past the hold limit, output goes out before the body's end")
    func holdLimit() {
        var m = Self.machine(batch: 4, maxHeld: 20)
        #expect(Self.write(&m, "ab") == .held)
        // 16 bytes held now (one padded record): still under the limit.
        #expect(m.flush() == .held)
        #expect(
            Self.write(&m, "cd")
                == .send(Self.record(Self.stdout, 1, Array("ab".utf8)) + Self.record(Self.stdout, 1, Array("cd".utf8))),
            "32 bytes held: past the limit, and a flush was pending")
    }

    @Test("an abort drops what is held; the end has no page")
    func abortDrops() {
        var m = Self.machine()
        #expect(Self.write(&m, "partial") == .held)
        #expect(m.end(.aborted) == Self.record(Self.stdout) + Self.endRequest())
        #expect(m.flush() == .dropped)
    }

    @Test("a timeout sends what was written, or a page if no stdout was")
    func timeouts() {
        var wrote = Self.machine()
        #expect(Self.write(&wrote, "partial") == .held)
        #expect(
            wrote.end(.timedOut(.request))
                == Self.record(Self.stdout, 1, Array("partial".utf8)) + Self.record(Self.stdout) + Self.endRequest())

        var silent = Self.machine()
        let page = "Status: 504 Gateway Timeout\r\nContent-Type: text/plain\r\n\r\nThe request timed out.\n"
        #expect(
            silent.end(.timedOut(.request))
                == Self.record(Self.stdout, 1, Array(page.utf8)) + Self.record(Self.stdout) + Self.endRequest())

        var logged = Self.machine()
        #expect(Self.write(&logged, "log", toError: true) == .held)
        let stalled = "Status: 408 Request Timeout\r\nContent-Type: text/plain\r\n\r\nThe request body stopped arriving.\n"
        #expect(
            logged.end(.timedOut(.input))
                == Self.record(Self.stderr, 1, Array("log".utf8)) + Self.record(Self.stdout, 1, Array(stalled.utf8))
                + Self.record(Self.stdout) + Self.record(Self.stderr) + Self.endRequest(),
            "stderr alone is not a response: the page follows it")
    }

    @Test("after a failed write, output is dropped and the request still ends")
    func dropping() {
        var m = Self.machine()
        m.stdinDidEnd()
        #expect(Self.write(&m, "lost", toError: true) == .held)
        m.dropFurther()
        #expect(m.phase == .dropping)
        #expect(Self.write(&m, "more") == .dropped)
        #expect(m.end(.finished) == Self.record(Self.stdout) + Self.record(Self.stderr) + Self.endRequest())
    }

    @Test("a reset starts the next request clean, with its own id")
    func reset() {
        var m = Self.machine()
        #expect(Self.write(&m, "one", toError: true) == .held)
        _ = m.end(.finished)
        m.reset(requestID: 7)
        #expect(m.phase == .open && !m.stdinEnded && !m.stderrUsed && !m.stdoutUsed)
        m.stdinDidEnd()
        #expect(Self.write(&m, "two", push: true) == .send(Self.record(Self.stdout, 7, Array("two".utf8))))
        #expect(m.end(.finished) == Self.record(Self.stdout, 7) + Self.endRequest(7))
    }

    @Test("a write larger than a record is split at 65535 bytes")
    func largeWrite() {
        var m = Self.machine()
        m.stdinDidEnd()
        let big = [UInt8](repeating: 0x61, count: 70_000)
        let action = big.withUnsafeBytes { m.write($0, toError: false) }
        #expect(
            action
                == .send(
                    Self.record(Self.stdout, 1, Array(big[..<65535])) + Self.record(Self.stdout, 1, Array(big[65535...]))))
    }
}
