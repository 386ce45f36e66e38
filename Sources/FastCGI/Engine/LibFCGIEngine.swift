import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Threading levels 0 and 1 on libfcgi: each worker owns an `FCGX_Request` and
/// blocks in `FCGX_Accept_r` on the shared listening socket.
extension Server {
    func runLibFCGI(listenFD: Int32) throws {
        try LibFCGI.initialize()
        WakeSignal.install()
        if handleSignals {
            // After FCGX_Init, which installs libfcgi's own SIGUSR1/SIGTERM handlers.
            ShutdownSignals.install { [self] number in
                logger.info("signal \(number): stopping")
                exit()
            }
        }
        if threadingLevel == .single {
            state.withLock { $0.liveWorkers = 1 }
            workerLoop(listenFD: listenFD)
        } else {
            state.withLock { $0.liveWorkers = workers }
            for index in 0..<workers {
                do {
                    try OSThread.spawn { [self] in workerLoop(listenFD: listenFD) }
                } catch {
                    state.withLock {
                        $0.liveWorkers -= workers - index
                        $0.failure = error
                        $0.stopping = true
                    }
                    break
                }
            }
            state.wait(until: { $0.stopping || $0.liveWorkers == 0 }) { _ in }
            startWaking()
        }
        let drained = state.wait(until: { $0.inFlight == 0 }, timeout: shutdownTimeout) { _ in true }
        if drained == nil {
            logger.warning("requests still in flight after the shutdown timeout", metadata: ["seconds": "\(shutdownTimeout)"])
        }
        if let failure = state.withLock({ $0.failure }) { throw failure }
    }

    /// One worker: accept, serve, finish, until the server stops.
    func workerLoop(listenFD: Int32) {
        WakeSignal.unblockInCurrentThread()
        let request = LibFCGIRequest(listenFD: listenFD, maxStdinAhead: limits.maxBufferedStdin)
        let me = UInt(pthread_self())
        defer { state.withLock { $0.liveWorkers -= 1 } }
        while true {
            let proceed = state.withLock { s in
                if s.stopping { return false }
                s.waiting.insert(me)
                return true
            }
            guard proceed else { return }
            let rc = request.accept()
            let (stop, maxReached) = state.withLock { s in
                s.waiting.remove(me)
                guard rc >= 0 else { return (s.stopping, false) }
                s.requestsInitiated += 1
                s.inFlight += 1
                return (false, maxRequests > 0 && s.requestsInitiated >= maxRequests)
            }
            if rc < 0 {
                if stop { return }
                if rc == -EINTR { continue }
                let failure = ServerError("accepting a connection failed: \(LibFCGIRequest.describeAcceptError(rc))")
                logger.error("\(failure.reason)")
                state.withLock {
                    $0.failure = $0.failure ?? failure
                    $0.stopping = true
                }
                startWaking()
                return
            }
            if maxReached { exit() }
            serve(request)
            request.finish(appStatus: 0)
            state.withLock { $0.inFlight -= 1 }
        }
    }

    /// Runs the handler for the role of `transport`'s request.
    func serve(_ transport: any RequestTransport) {
        var log = logger
        log[metadataKey: "request"] = "\(transport.requestID)"
        guard let factory = handlers[transport.role] else {
            log.warning("no handler for role \(transport.role)")
            return
        }
        let request = requestType.init(RequestContext(transport: transport, limits: limits))
        factory.handle(request)
        request.close()
    }

    /// Wakes workers blocked in accept until they all noticed the stop. A helper
    /// thread repeats the signal because one sent just before a worker enters
    /// `accept` would be lost.
    func startWaking() {
        guard signalWaitingWorkers() else { return }
        _ = try? OSThread.spawn(stackSize: 64 << 10) { [self] in
            for _ in 0..<250 {
                usleep(20_000)
                if !signalWaitingWorkers() { return }
            }
        }
    }

    /// Signals every worker waiting for a request; false if there is none.
    private func signalWaitingWorkers() -> Bool {
        let waiting = state.withLock { $0.waiting }
        for thread in waiting { pthread_kill(pthread_t(thread), WakeSignal.number) }
        return !waiting.isEmpty
    }
}

/// The signal that interrupts `accept` in a worker (a real-time signal nothing else
/// uses; its handler does nothing, and `SA_RESTART` is off so `accept` returns EINTR).
enum WakeSignal {
    static let number: Int32 = __libc_current_sigrtmin() + 7

    private static let installed: Bool = {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        return sigaction(number, &action, nil) == 0
    }()

    static func install() { _ = installed }

    /// Unblocks the signal in the calling thread: a parent may have started us with
    /// every signal blocked (the mask survives exec; dispatch threads block all).
    static func unblockInCurrentThread() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, number)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}
