import FastCGIClient
import FastCGIWire

/// Byte-level helpers for tests that send hand-made records.
enum Raw {
    /// BEGIN_REQUEST + PARAMS (+ empty PARAMS) for a request.
    static func begin(_ id: UInt16, role: Role = .responder, keep: Bool = true, params: [String: String] = [:]) -> [UInt8] {
        var out = Record.beginRequest(requestID: id, role: role, keepConnection: keep).encoded
        StreamWriter.appendParams(
            params.sorted { $0.key < $1.key }.map { NameValuePair($0.key, $0.value) }, requestID: id, into: &out)
        return out
    }

    /// A stream's records, closed with the empty record.
    static func stream(_ type: RecordType, _ id: UInt16, _ bytes: [UInt8], close: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        StreamWriter.append(bytes, type: type, requestID: id, close: close, into: &out)
        return out
    }

    /// A record with explicit padding (what some web servers send, and libfcgi mishandles).
    static func padded(_ type: RecordType, _ id: UInt16, _ content: [UInt8], padding: UInt8) -> [UInt8] {
        var out: [UInt8] = []
        RecordHeader(type: type, requestID: id, contentLength: UInt16(content.count), paddingLength: padding).encode(into: &out)
        return out + content + [UInt8](repeating: 0, count: Int(padding))
    }

    /// A GET_VALUES record asking for `names`.
    static func getValues(_ names: [String]) -> [UInt8] {
        Record(type: .getValues, requestID: 0, content: NameValueCoding.encode(names.map { NameValuePair($0, "") })).encoded
    }

    /// Reads replies until every id in `ids` has its END_REQUEST.
    static func readResponses(_ connection: FastCGIConnection, ids: Set<UInt16>) throws -> [UInt16: FastCGIResponse] {
        var responses: [UInt16: FastCGIResponse] = [:]
        for id in ids { responses[id] = FastCGIResponse(requestID: id) }
        var open = ids
        while !open.isEmpty {
            guard let record = try connection.readRecord() else {
                throw TestFailure("connection closed with \(open.sorted()) unanswered")
            }
            guard open.contains(record.requestID) else {
                throw TestFailure("unexpected \(record) (open: \(open.sorted()))")
            }
            responses[record.requestID]!.records.append(record)
            switch record.type {
            case .stdout: responses[record.requestID]!.stdout += record.content
            case .stderr: responses[record.requestID]!.stderr += record.content
            case .endRequest:
                responses[record.requestID]!.protocolStatus = ProtocolStatus(rawValue: record.content[4]) ?? .overloaded
                open.remove(record.requestID)
            default: throw TestFailure("unexpected \(record)")
            }
        }
        return responses
    }
}

extension FastCGIResponse {
    /// Number of END_REQUEST records received.
    var endCount: Int { records.filter { $0.type == .endRequest }.count }
}
