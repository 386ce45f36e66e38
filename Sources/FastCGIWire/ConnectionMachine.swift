/// What the I/O code must do after the machine saw an event.
public enum ConnectionAction: Hashable, Sendable {
    /// Send these bytes to the peer (management answers, refusals).
    case send([UInt8])
    /// A request is ready to run: BEGIN_REQUEST and every PARAMS record arrived.
    case start(RequestStart)
    /// Body bytes for a started request; an empty array ends the stream.
    case stdin(requestID: UInt16, bytes: [UInt8])
    /// Filter data bytes for a started request; an empty array ends the stream.
    case data(requestID: UInt16, bytes: [UInt8])
    /// The peer aborted a started request (spec §5.4): stop its output and end it.
    case abort(requestID: UInt16)
    /// Close the connection (after sending what the earlier actions hold).
    case close(reason: CloseReason)
    /// A request was refused without running (unknown role, FCGI_CANT_MPX_CONN,
    /// FCGI_OVERLOADED); its END_REQUEST is in the `.send` before. For logs and
    /// counters only.
    case refused(requestID: UInt16, reason: RefusalReason)
}

/// A request whose BEGIN_REQUEST and params are complete.
public struct RequestStart: Hashable, Sendable {
    /// The request id on its connection.
    public var requestID: UInt16
    /// The role asked for (one the application handles).
    public var role: Role
    /// Whether the peer set `FCGI_KEEP_CONN`.
    public var keepConnection: Bool
    /// The params as received (validated), in arrival order.
    public var paramsBlock: NameValueBlock

    /// The params as separate pairs (allocates; ``paramsBlock`` does not).
    public var params: [NameValuePair] { paramsBlock.pairs }

    /// Creates a request start.
    public init(requestID: UInt16, role: Role, keepConnection: Bool, paramsBlock: NameValueBlock) {
        self.requestID = requestID
        self.role = role
        self.keepConnection = keepConnection
        self.paramsBlock = paramsBlock
    }

    /// Creates a request start from pairs.
    public init(requestID: UInt16, role: Role, keepConnection: Bool, params: [NameValuePair]) {
        self.init(requestID: requestID, role: role, keepConnection: keepConnection, paramsBlock: NameValueBlock(params))
    }
}

/// The protocol logic of one connection, without I/O (SPEC §4, "protocol
/// firewall"): feed it the bytes that arrive and the requests that end; it answers
/// management records, refuses what must be refused, enforces the limits, and tells
/// the caller which requests to run and which input to give them.
///
/// Every record is validated here, so what reaches a request executor (libfcgi or
/// the Swift engine) is well-formed whatever the peer sent.
public struct ConnectionMachine: Sendable {
    private enum Phase: Sendable {
        /// Collecting params.
        case params(ParamsCollector)
        /// Started: input streams flowing.
        case running
    }

    private struct ActiveRequest: Sendable {
        var role: Role
        var keepConnection: Bool
        var phase: Phase
        var stdinOpen = true
        var dataOpen: Bool
        /// An authorizer's input is complete when its params end (spec §6.3: it
        /// receives FCGI_PARAMS only); STDIN records a web server sends it anyway
        /// are dropped.
        var ignoresStdin: Bool { role == .authorizer }
        var inputComplete: Bool { !stdinOpen && !dataOpen }
    }

    private struct ParamsCollector: Sendable {
        var bytes: [UInt8] = []
    }

    /// Whether several requests may run at once on this connection (level 2).
    public let multiplexing: Bool
    /// The roles the application handles; others get `FCGI_UNKNOWN_ROLE`.
    public let roles: Set<Role>
    /// ``roles`` as one bit per role number (checked per request without hashing).
    private let roleBits: UInt32
    /// Answers for `FCGI_GET_VALUES`.
    public let managementValues: [String: String]
    /// The limits in force.
    public let limits: ConnectionLimits

    private var decoder = RecordDecoder()
    private var active = RequestTable<ActiveRequest>()
    /// Order in which requests began (to start queued ones in order).
    private var order: [UInt16] = []
    private var closed = false
    /// Records of pipelined requests, held until the requests before them end.
    private var backlog: [Record] = []
    private var backlogBytes = 0
    /// A request without FCGI_KEEP_CONN ended: close once nothing else is in flight.
    private var closeWhenIdle = false

    /// Creates the machine for one connection.
    public init(
        multiplexing: Bool, roles: Set<Role>, managementValues: [String: String],
        limits: ConnectionLimits = ConnectionLimits()
    ) {
        self.multiplexing = multiplexing
        self.roles = roles
        roleBits = roles.reduce(0) { $0 | 1 << UInt32($1.rawValue) }
        self.managementValues = managementValues
        self.limits = limits
    }

    /// Requests begun and not yet ended.
    public var activeCount: Int { active.count }

    /// Whether a request in flight still waits for input from the peer (its
    /// params, its stdin or its filter data have not ended). When none does, the
    /// peer owes nothing until a request ends, so the connection's thread may go.
    public var awaitsInput: Bool {
        active.values.contains { request in
            if case .params = request.phase { return true }
            return !request.inputComplete
        }
    }

    /// How many FCGI_GET_VALUES records were answered on this connection.
    public private(set) var getValuesAnswered = 0

    /// Whether the machine has asked for the connection to close.
    public var isClosed: Bool { closed }

    // MARK: Events

    /// Bytes arrived from the peer.
    public mutating func receive(_ bytes: some Sequence<UInt8>) -> [ConnectionAction] {
        guard !closed else { return [] }
        decoder.append(bytes)
        var actions: [ConnectionAction] = []
        var input = UnsafeRawBufferPointer(start: nil, count: 0)
        decodeRecords(taking: &input, into: &actions)
        return actions
    }

    /// Bytes arrived from the peer: the actions are appended to `actions` (a buffer
    /// the caller reuses, and no generic code on the per-read path). Records are
    /// taken from `bytes` in place; only a record cut by its end is kept.
    package mutating func receive(_ bytes: UnsafeRawBufferPointer, into actions: inout [ConnectionAction]) {
        guard !closed else { return }
        var input = bytes
        decodeRecords(taking: &input, into: &actions)
    }

    private mutating func decodeRecords(taking input: inout UnsafeRawBufferPointer, into actions: inout [ConnectionAction]) {
        while !closed {
            let record: Record?
            do {
                guard let header = try decoder.nextHeader(taking: &input) else { break }
                if ignores(header) {
                    decoder.skipNext(taking: &input)
                    continue
                }
                record = try decoder.next(taking: &input)
            } catch {
                actions.append(close(.malformedRecord(error)))
                break
            }
            guard let record else { break }
            handle(record, into: &actions)
        }
    }

    /// Whether ``handle(_:into:)`` would do nothing with a record of this header
    /// whatever its content — stream content for a request not in flight (spec
    /// §3.3; the usual case: the rest of a body its handler did not read, after
    /// the request ended) — so the decoder may pass it over without copying it.
    /// Never while pipelined records are held: those are kept for later.
    private func ignores(_ header: RecordHeader) -> Bool {
        guard header.contentLength > 0, backlog.isEmpty, !header.isManagement else { return false }
        switch header.type {
        case .params, .stdin, .data: return active[header.requestID] == nil
        default: return false
        }
    }

    /// The executor finished request `requestID` and sent its `FCGI_END_REQUEST`.
    public mutating func requestEnded(_ requestID: UInt16) -> [ConnectionAction] {
        guard let request = active.removeValue(forKey: requestID) else { return [] }
        order.removeAll { $0 == requestID }
        if !request.keepConnection { closeWhenIdle = true }
        var actions: [ConnectionAction] = []
        if closeWhenIdle && active.isEmpty {
            actions.append(close(.requestEndedWithoutKeepConnection(requestID: requestID)))
            return actions
        }
        if readClosed {
            // Requests aborted at the peer's close end too: close once none runs.
            if active.isEmpty { actions.append(close(.peerClosed)) }
            return actions
        }
        // Pipelining: replay held records now that a request ended.
        let held = backlog
        backlog = []
        backlogBytes = 0
        for record in held where !closed { handle(record, into: &actions) }
        return actions
    }

    /// The peer closed its side (the read returned end of file, or failed). A
    /// request whose input is still incomplete can never complete: it is aborted
    /// (spec §5.4: a web server aborts by closing the connection). A request whose
    /// input is all here runs on, and its reply is written, as libfcgi does for a
    /// peer that only shut down its write side; the connection closes when the
    /// last one ends (a peer that closed both sides makes the write fail, and the
    /// request is aborted then). Pipelined requests held back are dropped.
    public mutating func peerClosed() -> [ConnectionAction] {
        guard !closed, !readClosed else { return [] }
        readClosed = true
        backlog = []
        backlogBytes = 0
        var actions: [ConnectionAction] = []
        for id in order {
            guard let request = active[id], !request.inputComplete else { continue }
            if case .running = request.phase {
                actions.append(.abort(requestID: id))
            } else {
                // Still collecting params: nothing runs, so it just goes.
                active.removeValue(forKey: id)
            }
        }
        order.removeAll { active[$0] == nil }
        if active.values.allSatisfy({ !$0.inputComplete }) { actions.append(close(.peerClosed)) }
        return actions
    }

    /// Whether the peer's side is closed: nothing more is to be read, and the
    /// connection closes once the requests in flight end.
    public private(set) var readClosed = false

    // MARK: Records

    private mutating func close(_ reason: CloseReason) -> ConnectionAction {
        closed = true
        return .close(reason: reason)
    }

    private mutating func handle(_ record: Record, into actions: inout [ConnectionAction]) {
        if record.requestID == WireConstants.nullRequestID {
            handleManagement(record, into: &actions)
            return
        }
        if !backlog.isEmpty {
            hold(record, into: &actions)
            return
        }
        switch record.type {
        case .beginRequest: begin(record, into: &actions)
        case .params: params(record, into: &actions)
        case .stdin, .data: stream(record, into: &actions)
        case .abortRequest: abort(record.requestID, into: &actions)
        default:
            // Types a web server does not send (STDOUT, END_REQUEST…) or unknown
            // application types: ignored, as for inactive ids.
            return
        }
    }

    /// A PARAMS record: collected until the empty one, which starts the request.
    private mutating func params(_ record: Record, into actions: inout [ConnectionAction]) {
        let id = record.requestID
        guard var request = active[id] else { return }  // inactive id: ignored (spec §3.3)
        guard case .params(var collector) = request.phase else {
            actions.append(close(.outOfSequence(requestID: id, .paramsAfterEnd)))
            return
        }
        guard record.content.isEmpty else {
            guard collector.bytes.count + record.content.count <= limits.maxParamsBytes else {
                actions.append(close(.paramsTooLarge(requestID: id, limit: limits.maxParamsBytes)))
                return
            }
            // The first record's content is taken as is (the usual single
            // PARAMS record is then never copied); later ones are appended.
            if collector.bytes.isEmpty { collector.bytes = record.content } else { collector.bytes += record.content }
            request.phase = .params(collector)
            active[id] = request
            return
        }
        let block: NameValueBlock
        do {
            block = try NameValueBlock(validating: collector.bytes, maxLength: limits.maxParamsBytes)
        } catch {
            actions.append(close(.malformedParams(requestID: id, error)))
            return
        }
        request.phase = .running
        if request.ignoresStdin { request.stdinOpen = false }
        active[id] = request
        actions.append(
            .start(RequestStart(requestID: id, role: request.role, keepConnection: request.keepConnection, paramsBlock: block)))
        // lighttpd and Apache send an authorizer no STDIN at all: its stdin
        // ends with its params, so no executor waits for a stream that
        // never comes.
        if request.ignoresStdin { actions.append(.stdin(requestID: id, bytes: [])) }
    }

    /// A STDIN or DATA record of a started request: its bytes, or its end.
    private mutating func stream(_ record: Record, into actions: inout [ConnectionAction]) {
        let id = record.requestID
        guard var request = active[id] else { return }
        guard case .running = request.phase else {
            actions.append(close(.outOfSequence(requestID: id, .streamBeforeParams(record.type))))
            return
        }
        let isStdin = record.type == .stdin
        if isStdin && request.ignoresStdin { return }
        let open = isStdin ? request.stdinOpen : request.dataOpen
        guard open else {
            if record.content.isEmpty { return }  // a repeated end of stream is harmless
            actions.append(close(.outOfSequence(requestID: id, .streamAfterEnd(record.type))))
            return
        }
        if record.content.isEmpty {
            if isStdin { request.stdinOpen = false } else { request.dataOpen = false }
            active[id] = request
        }
        actions.append(isStdin ? .stdin(requestID: id, bytes: record.content) : .data(requestID: id, bytes: record.content))
    }

    /// ABORT_REQUEST: a started request is aborted by its executor; one still
    /// collecting params is ended here.
    private mutating func abort(_ id: UInt16, into actions: inout [ConnectionAction]) {
        guard let request = active[id] else { return }
        if case .running = request.phase {
            actions.append(.abort(requestID: id))
            return
        }
        // Not started yet: nothing runs, so the machine ends it itself.
        active.removeValue(forKey: id)
        order.removeAll { $0 == id }
        actions.append(.send(Record.endRequest(requestID: id, appStatus: 0, protocolStatus: .requestComplete).encoded))
        if !request.keepConnection { closeWhenIdle = true }
        if closeWhenIdle && active.isEmpty { actions.append(close(.abortedWithoutKeepConnection(requestID: id))) }
    }

    /// Keeps a record of a pipelined request until the requests before it end.
    private mutating func hold(_ record: Record, into actions: inout [ConnectionAction]) {
        guard backlogBytes + record.content.count <= limits.maxPipelinedBytes else {
            actions.append(close(.pipelineTooLarge(limit: limits.maxPipelinedBytes)))
            return
        }
        backlog.append(record)
        backlogBytes += record.content.count + WireConstants.headerLength
    }

    private mutating func begin(_ record: Record, into actions: inout [ConnectionAction]) {
        let id = record.requestID
        guard record.content.count >= 8 else {
            actions.append(close(.outOfSequence(requestID: id, .beginRequestLength(record.content.count))))
            return
        }
        if let existing = active[id] {
            // The same id again once the first request's input is complete is a
            // pipelined request (clients reuse id 1): it waits for the first to end.
            guard existing.inputComplete else {
                actions.append(close(.outOfSequence(requestID: id, .beginRequestForActive)))
                return
            }
            hold(record, into: &actions)
            return
        }
        let roleNumber = UInt16(record.content[0]) << 8 | UInt16(record.content[1])
        let keep = record.content[2] & WireConstants.keepConnectionFlag != 0
        guard roleNumber < 32, roleBits & 1 << UInt32(roleNumber) != 0, let role = Role(rawValue: roleNumber) else {
            actions.append(.send(Record.endRequest(requestID: id, appStatus: 0, protocolStatus: .unknownRole).encoded))
            actions.append(.refused(requestID: id, reason: .unknownRole(roleNumber)))
            if !keep && active.isEmpty {
                actions.append(close(.unknownRoleWithoutKeepConnection(requestID: id, role: roleNumber)))
            }
            return
        }
        if multiplexing {
            guard active.count < limits.maxRequestsPerConnection else {
                actions.append(.send(Record.endRequest(requestID: id, appStatus: 0, protocolStatus: .overloaded).encoded))
                actions.append(
                    .refused(
                        requestID: id,
                        reason: .overloaded(limit: limits.maxRequestsPerConnection)))
                return
            }
        } else if !active.isEmpty {
            // Without multiplexing a new request may only follow requests whose input
            // is complete (pipelining); one that overlaps a request still receiving
            // input is multiplexing, refused as the spec says (§5.1).
            guard active.values.allSatisfy(\.inputComplete) else {
                actions.append(
                    .send(Record.endRequest(requestID: id, appStatus: 0, protocolStatus: .cantMultiplexConnection).encoded))
                actions.append(.refused(requestID: id, reason: .cannotMultiplex))
                return
            }
            hold(record, into: &actions)
            return
        }
        active[id] = ActiveRequest(role: role, keepConnection: keep, phase: .params(ParamsCollector()), dataOpen: role == .filter)
        order.append(id)
    }

    private mutating func handleManagement(_ record: Record, into actions: inout [ConnectionAction]) {
        guard record.type == .getValues else {
            // Spec §4.2: any management record we do not understand gets UNKNOWN_TYPE.
            actions.append(.send(Record.unknownType(record.type).encoded))
            return
        }
        let names: [NameValuePair]
        do {
            names = try NameValueCoding.decode(record.content)
        } catch {
            actions.append(close(.malformedGetValues(error)))
            return
        }
        // Each known name answered once, however often it was asked (libfcgi
        // overflows a stack buffer on repeats); unknown names left out (spec §4.1).
        var seen = Set<[UInt8]>()
        var answer: [NameValuePair] = []
        for pair in names where seen.insert(pair.name).inserted {
            let name = String(decoding: pair.name, as: UTF8.self)
            if let value = managementValues[name] { answer.append(NameValuePair(name: pair.name, value: Array(value.utf8))) }
        }
        actions.append(.send(Record(type: .getValuesResult, requestID: 0, content: NameValueCoding.encode(answer)).encoded))
        getValuesAnswered += 1
    }
}
