// libFuzzer target: bytes from an HTTP client into the request-side parsers
// (SPEC §8): the urlencoded and multipart form parsers (names ending in `*` and
// `!` included), the Cookie parser and the Accept-Encoding parser. The first byte
// picks the parser; for multipart the next one gives the boundary's length, taken
// from the bytes after it. Whatever arrives, a parser must neither crash nor hang,
// and what it returns is bounded by what came in: a malformed input is a
// FormError, never more bytes out than in. Built by scripts/fuzz with
// `swiftc -sanitize=fuzzer` together with the parsers' files (they have no
// dependencies on the rest of the library).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let selector = input[0] % 5
    let rest = Array(input.dropFirst())
    switch selector {
    case 0:
        var fields = FieldCollector()
        if (try? FormParser.parseURLEncoded(rest, into: &fields)) != nil { check(fields.result, within: rest.count) }
    case 1:
        guard let first = rest.first else { return 0 }
        let length = min(Int(first % 70) + 1, rest.count - 1)
        guard length > 0 else { return 0 }
        let boundary = Array(rest[1...length])
        let body = Array(rest[(length + 1)...])
        var fields = FieldCollector()
        if (try? FormParser.parseMultipart(body, boundary: boundary, into: &fields)) != nil {
            check(fields.result, within: body.count)
        }
    case 2:
        let cookies = CookieParser.parse(String(losslessBytes: rest))
        precondition(cookies.count <= rest.count / 2 + 1, "more cookies than the header can hold")
    case 3:
        _ = AcceptEncoding.acceptsGzip(String(losslessBytes: rest))
    default:
        let (mediaType, parameters) = FormParser.parseContentType(String(losslessBytes: rest))
        precondition(mediaType.utf8.count <= rest.count * 4 + 4, "media type longer than its header")
        precondition(parameters.count <= rest.count + 1, "more parameters than the header can hold")
    }
    return 0
}

/// The fields hold no more bytes than the input (decoding only ever shrinks).
private func check(_ fields: [String: FormValue], within count: Int) {
    var total = 0
    func add(_ value: FormValue) {
        switch value {
        case .text(let text): total += text.utf8.count
        case .binary(let bytes): total += bytes.count
        case .part(let part): total += part.body.count
        case .list(let items): items.forEach(add)
        }
    }
    for (name, value) in fields {
        total += name.utf8.count
        add(value)
    }
    // Latin-1 bytes turn into 2-byte UTF-8: up to twice the input.
    precondition(total <= 2 * count, "\(total) bytes of fields from \(count) bytes of input")
}
