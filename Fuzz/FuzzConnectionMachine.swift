// libFuzzer target: arbitrary bytes from a peer into the protocol firewall.
// The first byte picks the configuration and how the input is split; the rest is
// the byte stream. Whatever arrives, the machine must neither crash nor grow
// without bound, and every request it starts must be one it was told to handle.
// A second machine gets the same bytes as raw read buffers (the connection's
// path, records taken in place): both must decide exactly the same actions.
// Built by scripts/fuzz with `swiftc -sanitize=fuzzer` together with
// Sources/FastCGIWire (the module has no dependencies).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let control = bytes[0]
    var limits = ConnectionLimits()
    limits.maxParamsBytes = 4096
    limits.maxPipelinedBytes = 8192
    limits.maxRequestsPerConnection = 4
    var machine = ConnectionMachine(
        multiplexing: control & 1 == 1, roles: [.responder, .filter],
        managementValues: ["FCGI_MAX_CONNS": "10", "FCGI_MAX_REQS": "10", "FCGI_MPXS_CONNS": "1"], limits: limits)
    var raw = machine
    let stream = bytes[1...]
    let chunk = Int(control >> 1) + 1
    var started: Set<UInt16> = []
    var offset = stream.startIndex
    while offset < stream.endIndex {
        let end = min(stream.endIndex, offset + chunk)
        let actions = machine.receive(stream[offset..<end])
        var rawActions: [ConnectionAction] = []
        raw.receive(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: stream[offset..<end])), into: &rawActions)
        precondition(actions == rawActions, "raw buffers decided otherwise")
        for action in actions {
            if case .start(let start) = action {
                precondition(start.role == .responder || start.role == .filter, "started a role it does not handle")
                precondition(!started.contains(start.requestID), "started request \(start.requestID) twice")
                started.insert(start.requestID)
            }
        }
        // End every started request now and then, as executors would.
        if end % 3 == 0 {
            for id in started {
                precondition(machine.requestEnded(id) == raw.requestEnded(id), "raw buffers ended otherwise")
            }
            started.removeAll()
        }
        precondition(machine.activeCount <= 64, "unbounded requests")
        offset = end
    }
    precondition(machine.peerClosed() == raw.peerClosed(), "raw buffers closed otherwise")
    return 0
}
