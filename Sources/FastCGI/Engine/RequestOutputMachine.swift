import FastCGIWire

/// What becomes of one request's output, for both engines: the records a
/// handler's writes make, when they go out, and how the request ends. Pure — no
/// lock, no I/O: the engine that owns it (``LibFCGIWorker`` for libfcgi's
/// handlers, ``SwiftTransport`` for the Swift engine's) keeps it under its own
/// lock and writes what it returns to the connection, in the order taken.
///
/// The rules, in one place:
/// - stdout and stderr become records in the order written; they are held until
///   `batchSize` bytes wait, a flush (or a pushed write) asks for them, or the
///   request ends (a small response leaves in one write, with its END_REQUEST);
/// - until stdin has ended, nothing goes out, flushes included (nginx sends no
///   more of a body once it has the response's head), up to
///   `maxHeldBeforeBodyEnd` bytes; a flush made meanwhile is due once stdin ends
///   (``takeDueFlush()``);
/// - the end: held output, then stdout's end, stderr's end if it was used and
///   END_REQUEST; an abort drops what is held; a timeout keeps it, and sends a
///   504 or 408 page if the handler wrote no stdout;
/// - once ended (or ``dropFurther()``), every write is dropped and the request
///   ends once.
struct RequestOutputMachine {
    enum Phase: Equatable {
        case open
        /// The connection failed or the web server went away: writes are dropped;
        /// the end still comes (its records go nowhere, but the request ends).
        case dropping
        case ended
    }

    /// What a write or a flush leads to.
    enum Action: Equatable {
        /// The request is over (or dropping): the handler should see it aborted.
        case dropped
        /// Nothing to write yet.
        case held
        /// Records to write now.
        case send([UInt8])
    }

    /// How the request ends.
    enum Ending {
        /// The handler returned.
        case finished
        /// The web server aborted it (spec §5.4): held output is dropped.
        case aborted
        /// A timeout ended it: held output goes out, or a page if no stdout was
        /// written.
        case timedOut(Expiry)
    }

    let batchSize: Int
    let maxHeldBeforeBodyEnd: Int
    private(set) var requestID: UInt16
    private(set) var phase = Phase.open
    private(set) var stdoutUsed = false
    private(set) var stderrUsed = false
    private(set) var stdinEnded = false
    private var held: [UInt8] = []
    /// A flush came while the output was held for the end of stdin.
    private(set) var flushPending = false

    init(requestID: UInt16, batchSize: Int, maxHeldBeforeBodyEnd: Int) {
        self.requestID = requestID
        self.batchSize = batchSize
        self.maxHeldBeforeBodyEnd = maxHeldBeforeBodyEnd
    }

    /// Starts the next request, keeping the held buffer's capacity (a libfcgi
    /// worker serves request after request).
    mutating func reset(requestID: UInt16) {
        self.requestID = requestID
        phase = .open
        stdoutUsed = false
        stderrUsed = false
        stdinEnded = false
        flushPending = false
        held.removeAll(keepingCapacity: true)
    }

    /// Output waits for the end of stdin, up to the limit.
    private var holdsForBody: Bool { !stdinEnded && held.count < maxHeldBeforeBodyEnd }

    /// The handler wrote `bytes`; `push` asks for them to go out now (a flush).
    mutating func write(_ bytes: UnsafeRawBufferPointer, toError: Bool, push: Bool = false) -> Action {
        guard phase == .open else { return .dropped }
        if !bytes.isEmpty {
            if toError { stderrUsed = true } else { stdoutUsed = true }
            // Room for the records' headers and padding, growing geometrically
            // (an exact reserve per write would copy the held output each time).
            let needed = held.count + bytes.count + 16 * (bytes.count / 65535 + 1)
            if held.capacity < needed {
                held.reserveCapacity(Swift.max(needed, batchSize + 8 << 10, 2 * held.capacity))
            }
            StreamWriter.append(bytes, type: toError ? .stderr : .stdout, requestID: requestID, close: false, into: &held)
        }
        return push ? flush() : release(atBatch: true)
    }

    /// The handler flushed: what is held goes out, unless it waits for stdin.
    mutating func flush() -> Action {
        guard phase == .open else { return .dropped }
        if holdsForBody {
            if !held.isEmpty { flushPending = true }
            return .held
        }
        return release(atBatch: false)
    }

    /// The web server's stdin ended (the connection's thread).
    mutating func stdinDidEnd() { stdinEnded = true }

    /// A flush made while output was held may go out now (stdin has ended).
    var hasDueFlush: Bool { phase == .open && flushPending && !holdsForBody }

    /// A flush made while output was held, once stdin has ended — taken by the
    /// handler's thread (when its read sees the end), so the output keeps the
    /// handler's order. Empty if none is due.
    mutating func takeDueFlush() -> [UInt8] {
        hasDueFlush ? takeHeld() : []
    }

    /// The rest of the output and the request's end, or nil if it already ended.
    mutating func end(_ ending: Ending) -> [UInt8]? {
        guard phase != .ended else { return nil }
        var out: [UInt8]
        switch ending {
        case .finished: out = phase == .open ? takeHeld() : []
        case .aborted: out = []
        case .timedOut(let expiry):
            out = phase == .open ? takeHeld() : []
            if !stdoutUsed { out += TimeoutPage.records(requestID: requestID, expiry: expiry) }
        }
        phase = .ended
        held.removeAll(keepingCapacity: true)
        flushPending = false
        StreamWriter.appendRequestEnd(requestID: requestID, stderrUsed: stderrUsed, into: &out)
        return out
    }

    /// Writing to the connection failed: later output is dropped.
    mutating func dropFurther() {
        guard phase == .open else { return }
        phase = .dropping
        held.removeAll(keepingCapacity: true)
        flushPending = false
    }

    /// What is held, if it may go out: all of it on a flush, or once a batch is
    /// full (`atBatch`), or a pending flush once stdin has ended.
    private mutating func release(atBatch: Bool) -> Action {
        guard !held.isEmpty, !holdsForBody else { return .held }
        guard flushPending || !atBatch || held.count >= batchSize else { return .held }
        return .send(takeHeld())
    }

    private mutating func takeHeld() -> [UInt8] {
        flushPending = false
        defer { held = [] }
        return held
    }
}

/// The response sent for a request ended by a timeout before it sent anything:
/// `504 Gateway Timeout` past the request timeout, `408 Request Timeout` when its
/// input stalled.
enum TimeoutPage {
    static func records(requestID: UInt16, expiry: Expiry) -> [UInt8] {
        let page =
            switch expiry {
            case .request: "Status: 504 Gateway Timeout\r\nContent-Type: text/plain\r\n\r\nThe request timed out.\n"
            case .input:
                "Status: 408 Request Timeout\r\nContent-Type: text/plain\r\n\r\nThe request body stopped arriving.\n"
            }
        var out: [UInt8] = []
        StreamWriter.append(Array(page.utf8), type: .stdout, requestID: requestID, close: false, into: &out)
        return out
    }
}
