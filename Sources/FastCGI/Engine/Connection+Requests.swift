import FastCGIWire

// The request registry: which requests are in flight on the connection, what
// the machine's actions do to them, and how each one ends.
extension Connection {
    /// Carries out queued actions in order, outside the lock: on the serving
    /// thread, or (level 2) on the poller's while the serving thread runs a handler.
    func carryOutPending(onServingThread: Bool = true) {
        // Two buffers swapped with `pending`, so a batch allocates nothing.
        var actions = onServingThread ? spareActions : []
        defer { if onServingThread { spareActions = actions } }
        while true {
            actions.removeAll(keepingCapacity: true)
            state.withLock { swap(&actions, &$0.pending) }
            if actions.isEmpty { break }
            // The sinks given input in this batch, each committed once: usually one
            // (kept without allocating), a handful at most (a linear search).
            var first: (any RequestSink)?
            var others: [any RequestSink] = []
            for action in actions {
                guard let sink = carryOut(action) else { continue }
                guard let current = first else {
                    first = sink
                    continue
                }
                if current !== sink && !others.contains(where: { $0 === sink }) { others.append(sink) }
            }
            first?.commit(onServingThread: onServingThread)
            for sink in others { sink.commit(onServingThread: onServingThread) }
            // Multiplexed requests of this batch whose input was complete.
            if onServingThread { runQueued() }
        }
        if state.withLock({ $0.drainedOut }) { shutdownAfterWriters() }
    }

    /// Carries out one action; returns the sink it gave input to, if any.
    func carryOut(_ action: ConnectionAction) -> (any RequestSink)? {
        switch action {
        case .send(let bytes):
            _ = bytes.withUnsafeBytes { write($0) }
            return nil
        case .start(let start):
            return self.start(start)
        case .stdin(let id, let bytes):
            let sink = sink(id, receiving: bytes, stdin: true)
            sink?.stdin(bytes)
            return sink
        case .data(let id, let bytes):
            let sink = sink(id, receiving: bytes, stdin: false)
            sink?.data(bytes)
            return sink
        case .abort(let id):
            engine.statistics.count(.aborted)
            debug("the web server aborted the request", metadata: ["request": "\(id)"])
            sink(id)?.abort()
            return nil
        case .refused(let id, let reason):
            engine.statistics.count(.refused)
            if case .overloaded = reason { engine.statistics.count(.limit) }
            logger.warning("refused a request: \(reason)", metadata: ["request": "\(id)", "peer": "\(peer)"])
            return nil
        case .close(let reason):
            close(reason)
            return nil
        }
    }

    /// A request begins: a monitor page is answered here; any other is held
    /// until its input can make progress, then goes to the executor.
    private func start(_ start: RequestStart) -> (any RequestSink)? {
        if let page = MonitorPage(start, monitoring: engine.server.monitoring) { return answer(page, for: start) }
        let reachedMax = engine.admitRequest(on: number)
        let sink = HeldRequest(start: start, connection: self)
        let running = state.withLock { s -> Int in
            if s.peerIsNginx == nil { s.peerIsNginx = Self.isNginx(start.paramsBlock) }
            s.sinks[start.requestID] = sink
            if s.stalls.isActive {
                s.stalls.started(start.requestID, filter: start.role == .filter, at: MonotonicClock.seconds())
            }
            return s.sinks.count
        }
        engine.statistics.maxPerConnection.raise(to: running)
        // Stop only once the request is registered, so draining waits for it.
        if reachedMax { engine.server.exit() }
        return sink
    }

    /// Ping and status: answered here, no handler, no worker, not counted.
    private func answer(_ page: MonitorPage, for start: RequestStart) -> any RequestSink {
        let id = start.requestID
        var end = page.records(requestID: id, engine: engine)
        StreamWriter.appendRequestEnd(requestID: id, stderrUsed: false, into: &end)
        let sink = AnsweredRequest()
        endRequest(id, endRecords: end, counted: false)
        state.withLock { s in
            if s.ended.isEmpty || s.ended.remove(id) == nil { s.sinks[id] = sink }
        }
        return sink
    }

    /// The machine closes the connection: its requests are aborted.
    private func close(_ reason: CloseReason) {
        if reason.isOrdinary {
            debug("closing connection: \(reason)")
        } else {
            if reason.isLimit { engine.statistics.count(.limit) }
            logger.warning("closing connection: \(reason)", metadata: ["peer": "\(peer)"])
        }
        let running = state.withLock { Array($0.sinks.values) }
        if !running.isEmpty { engine.statistics.abortedRequests.add(running.count, ordering: .relaxed) }
        for sink in running { sink.abort() }
        shutdownAfterWriters()
    }

    /// A held request went to its executor: from now on the request timeout
    /// counts (the input timeout bounded the wait before). Under the lock, and only
    /// while it is still this id's sink: a request that already ended (refused,
    /// aborted) is not watched, and one that ends later leaves the watchdog.
    func watchStarted(_ start: RequestStart, sink: HeldRequest) {
        guard let watchdog = engine.watchdog else { return }
        state.withLock { s in
            guard let current = s.sinks[start.requestID], current === sink else { return }
            watchdog.started(start, sink: sink, on: self)
        }
    }

    private func sink(_ id: UInt16) -> (any RequestSink)? {
        state.withLock { $0.sinks[id] }
    }

    /// The sink of a request `bytes` of input arrived for (noted for the input timeout).
    private func sink(_ id: UInt16, receiving bytes: [UInt8], stdin: Bool) -> (any RequestSink)? {
        state.withLock { s in
            if s.stalls.isActive { s.stalls.received(id, stdin: stdin, ended: bytes.isEmpty, at: MonotonicClock.seconds()) }
            return s.sinks[id]
        }
    }

    /// Ends a request (any thread): tells the machine, then writes `endRecords`
    /// (the streams' ends and `FCGI_END_REQUEST`), both under the outbox's lock, so the
    /// peer cannot see the end before the machine knows (it may send the next
    /// request at once) and no output of a request started next can precede it.
    /// Never blocks: what the socket does not take now is queued for the flusher.
    func endRequest(_ requestID: UInt16, endRecords: [UInt8], counted: Bool = true) {
        let (needWake, watch) = outbox.withLock { o in
            let (needWake, closing, mark) = requestEnded(requestID)
            // Counted as served before the peer can see its end: a status page it
            // asks for next already counts it.
            if counted {
                engine.statistics.requestFinished()
                served.increment()
            }
            // The last request of a draining kept connection: a record behind its
            // END_REQUEST, in the same send, tells the web server not to keep
            // the connection (ARCHITECTURE.md, "Closing a kept connection").
            let bytes = mark ? endRecords + Self.closingMark : endRecords
            let watch = bytes.withUnsafeBytes { o.send($0, on: descriptor, last: closing) }
            if closing {
                if o.queued.isEmpty { o.side.shutDown(descriptor) } else { o.closeWhenSent = true }
            }
            return (needWake, watch)
        }
        if watch { engine.flusher.watch(self) }
        // Counted out of the engine once END_REQUEST is written or queued: run()
        // waits for the flusher to send what is queued before it returns.
        if counted { engine.requestFinished() }
        // The connection thread only has work if the machine reacted (close, a
        // pipelined request) or it is draining; most ends need no wake-up.
        if needWake { wake() }
    }

    /// Written right behind the END_REQUEST that closes a kept connection: nginx
    /// keeps an upstream connection for its next request only when END_REQUEST
    /// is the last byte it read, so a byte behind it, arriving with it, makes it
    /// close the connection instead, on TCP and unix sockets alike. The FIN that
    /// follows cannot promise that: nginx may take the END_REQUEST alone and send
    /// its next request before the FIN arrives. An `FCGI_UNKNOWN_TYPE` record
    /// (request id 0) is one any client may ignore, and it is sent to nginx
    /// alone: Apache, before it reuses a kept connection, takes a byte waiting
    /// on it for a sign of life, and would write its next request there.
    static let closingMark = Record.unknownType(RecordType(rawValue: 0)).encoded

    /// Whether the params come from nginx: its `fastcgi_params` send
    /// `SERVER_SOFTWARE nginx/<version>`.
    static func isNginx(_ params: NameValueBlock) -> Bool {
        params.firstValue(named: "SERVER_SOFTWARE")?.starts(with: "nginx/".utf8) ?? false
    }

    /// Returns whether the connection thread must be woken, whether the
    /// connection closes with this end (draining, the last in flight), and
    /// whether the closing mark goes with it (nginx).
    private func requestEnded(_ requestID: UInt16) -> (wake: Bool, closing: Bool, mark: Bool) {
        state.withLock { s in
            // Forget the sink first: a pipelined request may reuse the id (nginx
            // always uses 1). A sink that ends before it was registered is noted.
            if s.sinks.removeValue(forKey: requestID) == nil { s.ended.insert(requestID) }
            // Out of the watchdog before the peer can see the end: the next
            // request may reuse the id at once (nginx always uses 1), and its
            // entry must not be the one removed.
            engine.watchdog?.ended(requestID, on: self)
            s.stalls.ended(requestID)
            s.pending += s.machine.requestEnded(requestID)
            // Parked while its requests ran: idle from now on.
            if s.parked && s.sinks.isEmpty { engine.poller.becameIdle(self) }
            let closing = s.closesWithEnd
            return (!s.pending.isEmpty || s.draining, closing, closing && s.peerIsNginx == true)
        }
    }

    /// Ends the requests whose input stalled past ``ConnectionLimits/inputTimeout``.
    func endStalledRequests() {
        let now = MonotonicClock.seconds()
        let stalled = state.withLock { s -> [(UInt16, any RequestSink)] in
            s.stalls.takeStalled(at: now).compactMap { id in s.sinks[id].map { (id, $0) } }
        }
        for (id, sink) in stalled {
            engine.statistics.count(.inputTimeout)
            logger.warning(
                "request \(id): no input for \(engine.server.connectionLimits.inputTimeout ?? .zero) before its end; ending it",
                metadata: ["peer": "\(peer)"])
            sink.timeOut(.input)
        }
    }
}
