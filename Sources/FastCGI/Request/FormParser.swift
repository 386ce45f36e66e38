/// Parses form fields from the query string and a POST body: bytes in, fields out
/// (no request, no I/O, so the fuzz target drives it alone: Fuzz/FuzzRequestParsers.swift).
enum FormParser {
    /// The fields of a query string and, for a POST, of its body (read through
    /// `body` with the form limit, and only for a form media type).
    /// Whether ``parse(query:method:contentType:body:)`` reads the body: a POST
    /// of a form.
    static func readsBody(method: String?, contentType: String?) -> Bool {
        guard method?.uppercased() == "POST" else { return false }
        let mediaType = parseContentType(contentType ?? "").0
        return mediaType == "application/x-www-form-urlencoded" || mediaType == "multipart/form-data"
    }

    static func parse(
        query: [UInt8]?, method: String?, contentType: String?, body: (_ what: String) throws -> [UInt8]
    ) throws -> FieldCollector {
        var fields = FieldCollector()
        if let query, !query.isEmpty {
            try parseURLEncoded(query, into: &fields)
        }
        guard method?.uppercased() == "POST" else { return fields }
        let (mediaType, parameters) = parseContentType(contentType ?? "")
        switch mediaType {
        case "application/x-www-form-urlencoded":
            try parseURLEncoded(try body("form body"), into: &fields)
        case "multipart/form-data":
            guard let boundary = parameters["boundary"], !boundary.isEmpty else {
                throw FormError("multipart/form-data without a boundary parameter", cause: .missingBoundary)
            }
            try parseMultipart(try body("form body"), boundary: Array(boundary.utf8), into: &fields)
        default:
            break
        }
        return fields
    }

    /// `a=1&b=2;c` with `+` as space and `%XX` escapes.
    static func parseURLEncoded(_ bytes: [UInt8], into fields: inout FieldCollector) throws {
        for item in bytes.split(whereSeparator: { $0 == UInt8(ascii: "&") || $0 == UInt8(ascii: ";") }) {
            let eq = item.firstIndex(of: UInt8(ascii: "="))
            let rawName = eq.map { item[..<$0] } ?? item[...]
            let rawValue = eq.map { item[item.index(after: $0)...] } ?? []
            let name = String(losslessBytes: try percentDecode(rawName))
            guard !name.isEmpty else { continue }
            fields.add(name, FormValue(plain: try percentDecode(rawValue)))
        }
    }

    static func percentDecode(_ bytes: ArraySlice<UInt8>) throws -> [UInt8] {
        do {
            return try PercentCoding.decode(bytes, plusAsSpace: true)
        } catch {
            let end = Swift.min(error.index + 3, bytes.endIndex)
            throw FormError(
                "invalid percent escape \"\(String(losslessBytes: Array(bytes[error.index..<end])))\"",
                cause: .invalidPercentEncoding)
        }
    }

    /// `type/subtype; name=value; name="quoted"` → lowercased media type and parameters
    /// (parameter names lowercased).
    static func parseContentType(_ text: String) -> (String, [String: String]) {
        let items = splitParameters(text)
        guard let first = items.first else { return ("", [:]) }
        var parameters: [String: String] = [:]
        for item in items.dropFirst() {
            guard let eq = item.firstIndex(of: "=") else { continue }
            let name = item[..<eq].trimmingSpaces.lowercased()
            var value = item[item.index(after: eq)...].trimmingSpaces
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = String(value.dropFirst().dropLast()).replacingBackslashEscapes()
            }
            parameters[name] = value
        }
        return (first.trimmingSpaces.lowercased(), parameters)
    }

    /// Splits at `;` outside double quotes.
    private static func splitParameters(_ text: String) -> [Substring] {
        var items: [Substring] = []
        var start = text.startIndex
        var inQuotes = false
        var escaped = false
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            if escaped {
                escaped = false
            } else if c == "\\" && inQuotes {
                escaped = true
            } else if c == "\"" {
                inQuotes.toggle()
            } else if c == ";" && !inQuotes {
                items.append(text[start..<i])
                start = text.index(after: i)
            }
            i = text.index(after: i)
        }
        items.append(text[start...])
        return items
    }

    /// RFC 7578 multipart/form-data.
    static func parseMultipart(_ body: [UInt8], boundary: [UInt8], into fields: inout FieldCollector) throws {
        let delimiter = Array("--".utf8) + boundary
        let body = body[...]
        guard var cursor = find(delimiter, in: body, from: 0) else {
            throw FormError("multipart body has no boundary line", cause: .malformedMultipart)
        }
        let crlfDelimiter = Array("\r\n".utf8) + delimiter
        while true {
            cursor += delimiter.count
            // "--" after the delimiter closes the body.
            if body.count >= cursor + 2, body[cursor] == UInt8(ascii: "-"), body[cursor + 1] == UInt8(ascii: "-") {
                return
            }
            // Skip transport padding up to the line end.
            guard let lineEnd = find(Array("\r\n".utf8), in: body, from: cursor) else {
                throw FormError("multipart body ends without the closing boundary", cause: .malformedMultipart)
            }
            let partStart = lineEnd + 2
            guard let partEnd = find(crlfDelimiter, in: body, from: partStart) else {
                throw FormError("multipart body ends without the closing boundary", cause: .malformedMultipart)
            }
            try addPart(body[partStart..<partEnd], into: &fields)
            cursor = partEnd + 2
        }
    }

    private static func addPart(_ part: ArraySlice<UInt8>, into fields: inout FieldCollector) throws {
        let separator = Array("\r\n\r\n".utf8)
        var headers: [HeaderField] = []
        let bodyStart: Int
        if part.starts(with: Array("\r\n".utf8)) {
            bodyStart = part.startIndex + 2
        } else {
            guard let end = find(separator, in: part, from: part.startIndex) else {
                throw FormError("multipart part without a blank line after its headers", cause: .malformedMultipart)
            }
            for line in String(losslessBytes: Array(part[part.startIndex..<end])).split(separator: "\r\n") {
                guard let colon = line.firstIndex(of: ":") else {
                    throw FormError("malformed multipart header line \"\(line)\"", cause: .malformedMultipart)
                }
                headers.append(
                    HeaderField(name: line[..<colon].trimmingSpaces, value: line[line.index(after: colon)...].trimmingSpaces))
            }
            bodyStart = end + 4
        }
        let disposition = headers.first { $0.name.lowercased() == "content-disposition" }?.value
        guard let disposition else { throw FormError("multipart part without Content-Disposition", cause: .malformedMultipart) }
        let (_, parameters) = parseContentType(disposition)
        guard let name = parameters["name"], !name.isEmpty else {
            throw FormError("multipart part without a field name", cause: .malformedMultipart)
        }
        let contentType = headers.first { $0.name.lowercased() == "content-type" }?.value
        let mime = MIMEPart(
            headers: headers, name: name, filename: parameters["filename"], contentType: contentType,
            body: Array(part[bodyStart...]))
        fields.add(name, .part(mime))
    }

    /// Index of the first occurrence of `needle` in `haystack` at or after `start`.
    static func find(_ needle: [UInt8], in haystack: ArraySlice<UInt8>, from start: Int) -> Int? {
        guard let first = needle.first, haystack.endIndex - start >= needle.count else { return nil }
        var i = start
        let last = haystack.endIndex - needle.count
        while i <= last {
            guard let candidate = haystack[i...last].firstIndex(of: first) else { return nil }
            if haystack[candidate..<candidate + needle.count].elementsEqual(needle) { return candidate }
            i = candidate + 1
        }
        return nil
    }
}

/// Collects fields applying the name rules: `*` lists, `!` parts; a plain name
/// keeps the value's exact bytes. Of a plain or `!` name given twice the last
/// value wins (as in the original module, whose fields were a dictionary); a `*`
/// name keeps every value. Every part with a filename is also kept in ``files``.
struct FieldCollector {
    private(set) var result: [String: FormValue] = [:]
    /// The uploaded files (parts with a filename) by field name as sent; the
    /// last of a name wins, as in ``result``.
    private(set) var files: [String: MIMEPart] = [:]

    mutating func add(_ name: String, _ value: FormValue) {
        var base = Substring(name)
        var isList = false
        var keepPart = false
        for _ in 0..<2 {
            if base.hasSuffix("*") {
                isList = true
                base = base.dropLast()
            } else if base.hasSuffix("!") {
                keepPart = true
                base = base.dropLast()
            }
        }
        var value = value
        if case .part(let part) = value {
            if part.filename != nil { files[name] = part }
            if !keepPart { value = FormValue(plain: part.body) }
        }
        if isList {
            if case .list(var items) = result[name] {
                items.append(value)
                result[name] = .list(items)
            } else {
                result[name] = .list([value])
            }
        } else {
            result[name] = value
        }
    }
}
