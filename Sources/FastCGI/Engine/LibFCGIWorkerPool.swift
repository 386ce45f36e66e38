import FastCGIWire
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Threading levels 0 and 1: a fixed pool of libfcgi workers. A connection gets a
/// worker only for a request whose BEGIN_REQUEST and params are complete, so an idle
/// or slow connection holds none.
final class LibFCGIWorkerPool: RequestExecutor, @unchecked Sendable {
    private let idle: Guarded<(workers: [LibFCGIWorker], stopped: Bool)>
    private let all: [LibFCGIWorker]

    init(server: Server, size: Int) throws {
        try LibFCGI.initialize()
        var workers: [LibFCGIWorker] = []
        for index in 0..<size { workers.append(try LibFCGIWorker(server: server, index: index)) }
        all = workers
        idle = Guarded((workers, false))
        for worker in workers { try worker.startThreads(pool: self) }
    }

    func start(_ request: RequestStart, on connection: Connection) -> any RequestSink {
        let worker = idle.wait(until: { !$0.workers.isEmpty || $0.stopped }) { s in
            s.workers.isEmpty ? nil : s.workers.removeLast()
        }
        guard let worker = worker ?? nil else { return RefusedRequest(request: request, connection: connection) }
        return worker.begin(request, on: connection)
    }

    /// A worker finished its request and waits for the next.
    func release(_ worker: LibFCGIWorker) {
        idle.withLock { $0.workers.append(worker) }
    }

    /// A worker is one of a few threads: it must never wait on a slow upload.
    func gathersBody(for role: Role) -> Bool { true }

    var workerCounts: (busy: Int, idle: Int) {
        let idleCount = idle.withLock { $0.workers.count }
        return (all.count - idleCount, idleCount)
    }

    func shutdown() {
        idle.withLock { $0.stopped = true }
        for worker in all { worker.stop() }
    }
}

/// A request that arrives while the server stops: answered `FCGI_OVERLOADED`.
final class RefusedRequest: RequestSink {
    init(request: RequestStart, connection: Connection) {
        let id = request.requestID
        var end: [UInt8] = []
        StreamWriter.appendEndRequest(requestID: id, protocolStatus: .overloaded, into: &end)
        connection.endRequest(id, endRecords: end)
    }
    func stdin(_ bytes: [UInt8]) {}
    func data(_ bytes: [UInt8]) {}
    func abort() {}
}

/// One libfcgi worker: an `FCGX_Request` reading BEGIN_REQUEST and an empty
/// PARAMS stream from one end of a pipe whose other end the connection thread
/// writes to, stdin straight from the firewall's queue
/// (``libfcgiInput(into:)``; the filter's through the pipe), and a thread to
/// run it. A request whose input is complete when it starts (the common case: the
/// web server sent BEGIN_REQUEST, PARAMS and STDIN in one go) is run by the
/// connection thread itself — its records are already in the pipe, so
/// `FCGX_Accept_r` does not block, and no other thread needs waking — while the
/// server's ``ConnectionPoller`` reads the connection for it, so management
/// records and aborts are still handled at once. A request whose input is still
/// arriving is handed to the worker's own thread, which reads it as it comes.
/// Either way the handler's output does not go back through the pipe:
/// libfcgi's stdout and stderr buffers are handed to
/// ``libfcgiOutput(_:toError:closing:)``, which writes them to the connection.
///
/// ```
/// network ──▶ Connection (Swift parser, ConnectionMachine) ──BEGIN, PARAMS──▶ pipe ──▶ libfcgi (handler)
///                                                         ──stdin (memory)──▶ fillBuffProc ──┘
/// network ◀── Connection.write ◀── STDOUT/STDERR records ◀── libfcgi's stream buffers (emptyBuffProc) ◀──┘
/// ```
final class LibFCGIWorker: LibFCGIOutput, @unchecked Sendable {
    let server: Server
    let index: Int
    /// libfcgi's input: the firewall writes canonical records, libfcgi reads them.
    private let input: InputPipe
    let abortFlag = AbortFlag()
    private weak var pool: LibFCGIWorkerPool?

    private struct Current {
        /// Which request this is: a ticket for an earlier one is ignored.
        var generation = 0
        var connection: Connection?
        var id: UInt16 = 0
        var isFilter = false
        var dataEnded = false
        var heldData: [UInt8] = []
        /// Every role but the filter: stdin goes to libfcgi's in-stream from
        /// ``stdinChunks`` (``LibFCGIRequest/accept(directStdin:)``), not through
        /// the pipe, which then carries only BEGIN_REQUEST and the empty PARAMS.
        var directStdin = false
        /// Direct stdin not yet read by libfcgi, `stdinOffset` bytes of the first
        /// chunk already read; `stdinQueued` bytes in all.
        var stdinChunks: [[UInt8]] = []
        var stdinOffset = 0
        /// The body gathered before the request started (``HeldRequest``): read
        /// before ``stdinChunks``, from memory and its spill file.
        var gathered: SpillBuffer?
        var stdinQueued = 0
        /// Records for the pipe, waiting for `commit`.
        var queued: [UInt8] = []
        /// A thread runs the request (after its first `commit`).
        var running = false
        /// The request was ended early (abort): output from libfcgi is dropped.
        var endedEarly = false
        /// The handler called `Request.finish()` and goes on: the engine counts
        /// it until the handler returns.
        var finishedEarly: Engine?
        /// Why the handler's reads fail once its input, cut short by an early
        /// end, runs out (nil: the input had ended; reads just end).
        var inputFailure: RequestError?
        /// The request's params (with FCGI_ROLE, as libfcgi's envp has them).
        var environment = CGIEnvironment(block: NameValueBlock())
        /// The handler's output and the request's end: stdout (and stderr behind
        /// it) held until ``LibFCGIWorker/outputBatch`` bytes wait, a flush, or
        /// END_REQUEST.
        var output: RequestOutputMachine

        /// The output machine keeps the one record of stdin's end: its hold
        /// depends on it.
        var stdinEnded: Bool { output.stdinEnded }
    }

    private let current: Guarded<Current>
    /// Serializes the handler's output with the request's end: output is taken
    /// from the machine and written under this lock (`current`'s inside it), so
    /// it reaches the peer in the order taken and before END_REQUEST (a record
    /// after it could be read as the next request's with the same id).
    /// (Its value is unused: with a zero-sized value ThreadSanitizer took the
    /// lock object's own header for the guarded variable, and reported a race.)
    private let sending = Guarded(0)
    /// Wakes the worker's thread for a request whose input is still arriving.
    private let handOff = Guarded((go: false, stopped: false))
    /// libfcgi's request, used by one thread at a time: the worker's or a
    /// connection's (set once, before the worker's thread starts).
    private var libfcgi: LibFCGIRequest?

    init(server: Server, index: Int) throws {
        self.server = server
        self.index = index
        input = try InputPipe()
        current = Guarded(
            Current(
                output: RequestOutputMachine(
                    requestID: 0, batchSize: Self.outputBatch,
                    maxHeldBeforeBodyEnd: server.limits.maxOutputBeforeBodyEnd)))
    }

    func startThreads(pool: LibFCGIWorkerPool) throws {
        self.pool = pool
        libfcgi = LibFCGIRequest(
            connected: input.reader, maxStdinAhead: server.limits.maxBufferedStdin, abortFlag: abortFlag, output: self)
        try OSThread.spawn { [self] in workerLoop() }
    }

    /// Ends the worker's thread and closes its input (a request still reading it
    /// sees it fail).
    func stop() {
        handOff.withLock { $0.stopped = true }
        input.close()
    }

    // MARK: Running a request (libfcgi)

    private func workerLoop() {
        while true {
            let go = handOff.wait(until: { $0.go || $0.stopped }) { s -> Bool in
                s.go = false
                return !s.stopped
            }
            guard go == true else { break }
            runHandler()
            requestDone()
        }
        server.logger.debug("libfcgi worker \(index) stopped")
    }

    /// Runs the current request's handler through libfcgi on the calling thread —
    /// the worker's own, or the connection's when the input was complete. The
    /// caller then ends the request (``requestDone()``).
    private func runHandler() {
        guard let request = libfcgi else { return }
        request.bindToCurrentThread()
        let direct = current.withLock { $0.directStdin }
        guard request.accept(directStdin: direct) >= 0 else {
            server.logger.error("libfcgi worker \(index): FCGX_Accept_r failed on its pipe")
            return
        }
        let connection = current.withLock { c in
            request.environment = c.environment
            return c.connection?.number
        }
        server.serve(request, connection: connection)
        request.drainInput()
        request.finish()
    }

    /// The most stdout held before it is written: libfcgi hands its output over
    /// 8 KiB at a time; sending each piece alone cost a system call and a TCP
    /// segment per 8 KiB (C libfcgi programs pay that too).
    static let outputBatch = 64 << 10

    /// Output from libfcgi's buffers (the handler's thread): stdout's last bytes
    /// leave with END_REQUEST (the usual small response: no write here at all);
    /// stderr and a flush go out now (unless held for the end of stdin).
    func libfcgiOutput(_ bytes: UnsafeRawBufferPointer, toError: Bool, closing: Bool, pushing: Bool) -> Bool {
        output { $0.write(bytes, toError: toError, push: toError || (pushing && !closing)) }
    }

    /// Takes output from the machine and writes it, in the order taken; false
    /// (and the handler sees an abort) once the request is over for it.
    private func output(_ take: (inout RequestOutputMachine) -> RequestOutputMachine.Action) -> Bool {
        let (outcome, connection) = sending.withLock { _ -> (WriteOutcome?, Connection?) in
            let (action, connection) = current.withLock { c in
                c.connection == nil ? (.dropped, nil) : (take(&c.output), c.connection)
            }
            switch action {
            case .dropped: return (nil, nil)
            case .held: return (.written, nil)
            case .send(let records):
                guard let connection, !records.isEmpty else { return (.written, nil) }
                return (records.withUnsafeBytes { connection.write($0) }, connection)
            }
        }
        // Past the queue's bound: wait for the peer to read, outside the locks
        // (an abort or a timeout takes them to end the request meanwhile).
        switch outcome {
        case nil: return false
        case .written: return true
        case .full where connection?.waitForRoom() ?? false: return true
        case .full, .failed:
            current.withLock { $0.output.dropFurther() }
            abortFlag.set()
            return false
        }
    }

    /// libfcgi finished the request: end it (unless an abort or `Request.finish()`
    /// already did) and take the next one.
    private func requestDone() {
        let background = sending.withLock { _ -> Engine? in
            let (connection, id, end, background) = current.withLock { c -> (Connection?, UInt16, [UInt8]?, Engine?) in
                defer {
                    c.connection = nil
                    c.endedEarly = true
                    c.finishedEarly = nil
                }
                c.stdinChunks = []
                c.stdinQueued = 0
                c.gathered = nil
                return (c.connection, c.id, c.output.end(.finished), c.finishedEarly)
            }
            if let end, let connection { connection.endRequest(id, endRecords: end) }
            return background
        }
        background?.backgroundEnded()
        pool?.release(self)
    }

    /// `Request.finish()` (the handler's thread, its output handed over): the
    /// request ends for the web server now; output after it is dropped.
    func libfcgiFinishEarly() {
        sending.withLock { _ in
            let ending = current.withLock { c -> (Connection, UInt16, [UInt8])? in
                guard !c.endedEarly, c.finishedEarly == nil, let connection = c.connection,
                    let end = c.output.end(.finished)
                else { return nil }
                c.finishedEarly = connection.engine
                return (connection, c.id, end)
            }
            guard let (connection, id, end) = ending else { return }
            connection.engine.backgroundStarted()
            // A handler run on its connection's own thread holds that thread until
            // it returns, and at this level the next request waits for it: the
            // connection closes with this end instead (the web server, told so
            // with the end, takes another for its next request).
            if connection.isServingThread { connection.drain() }
            connection.endRequest(id, endRecords: end)
        }
    }

    // MARK: Requests in (connection thread)

    func begin(_ request: RequestStart, on connection: Connection) -> any RequestSink {
        abortFlag.reset()
        let environment = CGIEnvironment(request: request)
        let generation = current.withLock { c in
            // Reset field by field: the buffers keep their capacity from request to
            // request, and nothing is rebuilt.
            c.generation += 1
            c.connection = connection
            c.id = request.requestID
            c.isFilter = request.role == .filter
            c.directStdin = !c.isFilter
            c.stdinChunks.removeAll(keepingCapacity: true)
            c.stdinOffset = 0
            c.gathered = nil
            c.stdinQueued = 0
            c.dataEnded = false
            if !c.heldData.isEmpty { c.heldData = [] }
            c.queued.removeAll(keepingCapacity: true)
            c.running = false
            c.endedEarly = false
            c.inputFailure = nil
            c.output.reset(requestID: request.requestID)
            c.environment = environment
            // libfcgi gets an empty PARAMS stream: the handler's environment is the
            // block the firewall validated, and libfcgi's own copy of the params (one
            // malloc per param, parsed and freed per request) would go unused.
            StreamWriter.appendBeginWithoutParams(
                requestID: request.requestID, role: request.role, keepConnection: true, into: &c.queued)
            return c.generation
        }
        return Ticket(worker: self, generation: generation)
    }

    /// The sink of one request on this worker.
    private final class Ticket: RequestSink {
        let worker: LibFCGIWorker
        let generation: Int
        init(worker: LibFCGIWorker, generation: Int) {
            self.worker = worker
            self.generation = generation
        }
        func stdin(_ bytes: [UInt8]) { worker.stdin(bytes, generation: generation) }
        func data(_ bytes: [UInt8]) { worker.data(bytes, generation: generation) }
        func gatheredStdin(_ body: SpillBuffer) { worker.gatheredStdin(body, generation: generation) }
        func abort() { worker.abort(generation: generation) }
        func timeOut(_ expiry: Expiry) { worker.abort(generation: generation, timedOut: expiry) }
        func commit(onServingThread: Bool) { worker.commit(generation: generation, onServingThread: onServingThread) }
    }

    // Input is queued by the connection thread and written on `commit`, so a
    // request that arrived in one read reaches libfcgi in one write.

    /// Direct stdin held for a handler that reads slower than the body arrives:
    /// past this the connection's thread waits (and so the web server, through
    /// TCP), as it waited for room in the pipe before.
    static let maxQueuedStdin = 256 << 10

    func stdin(_ bytes: [UInt8], generation: Int) {
        let direct = current.withLock { c -> Bool in
            guard c.generation == generation, !c.endedEarly else { return false }
            guard c.directStdin else {
                queueForPipe(bytes, &c)
                return false
            }
            if bytes.isEmpty {
                c.output.stdinDidEnd()
            } else {
                c.stdinChunks.append(bytes)
                c.stdinQueued += bytes.count
            }
            return c.running && c.stdinQueued > Self.maxQueuedStdin
        }
        guard direct else { return }
        _ = current.wait(until: { c in
            c.generation != generation || c.endedEarly || c.stdinQueued <= Self.maxQueuedStdin
        }) { _ in }
    }

    /// The body gathered before the request started: libfcgi reads it first.
    func gatheredStdin(_ body: SpillBuffer, generation: Int) {
        current.withLock { c in
            guard c.generation == generation, !c.endedEarly, c.directStdin else { return }
            c.gathered = body
        }
    }

    var inputFailure: RequestError? { current.withLock { $0.inputFailure } }

    /// The next direct stdin bytes for libfcgi (the handler's thread): waits for
    /// some; 0 at the end of the stream, or once the request was ended early.
    func libfcgiInput(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let (count, flushDue) = nextStdin(into: buffer)
        // A flush held for the end of stdin goes out now, from the handler's
        // thread (so the output keeps its order).
        if flushDue { _ = output { .send($0.takeDueFlush()) } }
        return count
    }

    private func nextStdin(into buffer: UnsafeMutableRawBufferPointer) -> (count: Int, flushDue: Bool) {
        current.wait(until: { c in !c.stdinChunks.isEmpty || c.gathered != nil || c.stdinEnded || c.endedEarly }) { c in
            if !c.endedEarly, c.gathered != nil {
                // A local read (memory, or the spill file's pages): no network wait.
                switch c.gathered!.takeResult(into: buffer) {
                case .success(let count) where count > 0: return (count, false)
                case .success: c.gathered = nil
                case .failure(let error):
                    c.gathered = nil
                    c.endedEarly = true
                    c.inputFailure = RequestError(
                        "request \(c.id): the gathered body could not be read back: \(error)", cause: .aborted)
                }
            }
            guard !c.endedEarly, let first = c.stdinChunks.first else { return (0, c.output.hasDueFlush) }
            let count = min(buffer.count, first.count - c.stdinOffset)
            first.withUnsafeBytes { source in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[c.stdinOffset..<c.stdinOffset + count]))
            }
            c.stdinOffset += count
            c.stdinQueued -= count
            if c.stdinOffset == first.count {
                c.stdinChunks.removeFirst()
                c.stdinOffset = 0
            }
            return (count, false)
        } ?? (0, false)
    }

    /// Stdin (and the filter's data held behind it) as records for the pipe.
    private func queueForPipe(_ bytes: [UInt8], _ c: inout Current) {
        if bytes.isEmpty {
            guard !c.stdinEnded else { return }
            c.output.stdinDidEnd()
        }
        StreamWriter.append(bytes, type: .stdin, requestID: c.id, close: bytes.isEmpty, into: &c.queued)
        // libfcgi reads FCGI_DATA only after stdin's end: data that came early waited.
        guard bytes.isEmpty, c.isFilter else { return }
        if !c.heldData.isEmpty {
            StreamWriter.append(c.heldData, type: .data, requestID: c.id, close: false, into: &c.queued)
            c.heldData = []
        }
        if c.dataEnded { StreamWriter.append(noBytes, type: .data, requestID: c.id, close: true, into: &c.queued) }
    }

    func data(_ bytes: [UInt8], generation: Int) {
        current.withLock { c in
            guard c.generation == generation, !c.endedEarly else { return }
            if bytes.isEmpty { c.dataEnded = true }
            guard c.stdinEnded else {
                c.heldData += bytes
                return
            }
            StreamWriter.append(bytes, type: .data, requestID: c.id, close: bytes.isEmpty, into: &c.queued)
        }
    }

    /// Abort (spec §5.4): the handler sees `aborted`, its output is dropped, the web
    /// server gets END_REQUEST now; the worker is released when libfcgi finishes.
    /// A timeout ends it the same way, but what the handler wrote still goes out
    /// (or a 504 or 408 page if it wrote nothing).
    func abort(generation: Int, timedOut expiry: Expiry? = nil) {
        let ended = current.withLock { c -> (connection: Connection?, id: UInt16, queued: [UInt8], end: [UInt8]?)? in
            guard c.generation == generation, !c.endedEarly else { return nil }
            abortFlag.set()
            if !c.stdinEnded || (c.isFilter && !c.dataEnded) {
                c.inputFailure = .inputCutShort(requestID: c.id, by: expiry)
            }
            // Unblock a handler waiting for input that will not come (direct stdin:
            // `endedEarly` ends its stream; nothing may enter the pipe).
            if !c.stdinEnded && !c.directStdin {
                StreamWriter.append(noBytes, type: .stdin, requestID: c.id, close: true, into: &c.queued)
            }
            if c.isFilter && !c.dataEnded {
                StreamWriter.append(noBytes, type: .data, requestID: c.id, close: true, into: &c.queued)
            }
            c.endedEarly = true
            c.output.stdinDidEnd()
            c.dataEnded = true
            let end = c.output.end(expiry.map { .timedOut($0) } ?? .aborted)
            // Not started yet: its first commit starts it, with its input complete.
            guard c.running else { return (c.connection, c.id, [], end) }
            defer { c.queued = [] }
            return (c.connection, c.id, c.queued, end)
        }
        guard let ended, let connection = ended.connection else { return }
        if !ended.queued.isEmpty { _ = ended.queued.withUnsafeBytes { input.write($0) } }
        // Written under the send lock: after any output the handler took before.
        guard let end = ended.end else { return }
        sending.withLock { _ in connection.endRequest(ended.id, endRecords: end) }
    }

    /// The content of a stream's end record.
    private let noBytes = EmptyCollection<UInt8>()

    /// Whether a request whose input is complete may run on its connection's thread.
    private var runsInline: Bool { server.monitoring.allowsInlineHandlers }

    /// Writes the queued input (connection thread, at the end of each batch of
    /// input). The first commit also starts the request: on this thread if its
    /// input is complete and fits in the pipe now, else on the worker's thread.
    func commit(generation: Int, onServingThread: Bool) {
        enum Next {
            case nothing
            case runHere(Connection?)
            case handOff([UInt8])
            case write([UInt8])
        }
        let next = current.withLock { c -> Next in
            guard c.generation == generation else { return .nothing }
            let starting = !c.running
            c.running = true
            if starting && onServingThread && runsInline && c.stdinEnded && (!c.isFilter || c.dataEnded) {
                // The usual case: the whole request fits in the pipe, written here
                // without blocking; libfcgi then reads it without blocking either.
                let sent = (try? c.queued.withUnsafeBytes { input.writeNow($0) }.get()) ?? 0
                if sent == c.queued.count {
                    c.queued.removeAll(keepingCapacity: true)
                    return .runHere(c.connection)
                }
                c.queued.removeFirst(sent)
            }
            guard starting || !c.queued.isEmpty else { return .nothing }
            // Written outside the lock: the write may wait for libfcgi, which needs
            // the lock to let the handler's output through.
            defer { c.queued = [] }
            return starting ? .handOff(c.queued) : .write(c.queued)
        }
        switch next {
        case .nothing:
            return
        case .runHere(let connection):
            // The poller stops reading before END_REQUEST goes out: the peer's next request
            // is then this thread's to read.
            if let connection { connection.runWatched { runHandler() } } else { runHandler() }
            requestDone()
        case .handOff(let bytes):
            // The worker's thread is woken first: a big write waits until it reads.
            handOff.withLock { $0.go = true }
            _ = bytes.withUnsafeBytes { input.write($0) }
        case .write(let bytes):
            _ = bytes.withUnsafeBytes { input.write($0) }
        }
    }
}
