/// One form field of ``Request/params``.
public enum FormValue: Sendable, Hashable {
    /// A plain value.
    case text(String)
    /// A whole MIME part (for names ending in `!`).
    case part(MIMEPart)
    /// Every value of a name ending in `*`, in order.
    case list([FormValue])

    /// The value as text: the text itself, a part's body decoded, or a list's first.
    public var string: String? {
        switch self {
        case .text(let text): text
        case .part(let part): String(losslessBytes: part.body)
        case .list(let items): items.first?.string
        }
    }

    /// Every value as text (one element unless this is a list).
    public var strings: [String] {
        switch self {
        case .list(let items): items.compactMap(\.string)
        default: string.map { [$0] } ?? []
        }
    }

    /// The MIME part, if this is one.
    public var part: MIMEPart? {
        if case .part(let part) = self { return part }
        return nil
    }
}

/// A part of a `multipart/form-data` body, as kept for field names ending in `!`.
public struct MIMEPart: Sendable, Hashable {
    /// The part's headers in order (names as sent).
    public var headers: [HeaderField]
    /// The field name from `Content-Disposition`.
    public var name: String
    /// The uploaded file's name from `Content-Disposition`, if any.
    public var filename: String?
    /// The part's `Content-Type`, if given.
    public var contentType: String?
    /// The part's content.
    public var body: [UInt8]

    /// Creates a part.
    public init(headers: [HeaderField], name: String, filename: String?, contentType: String?, body: [UInt8]) {
        self.headers = headers
        self.name = name
        self.filename = filename
        self.contentType = contentType
        self.body = body
    }
}

/// A header line of a MIME part.
public struct HeaderField: Sendable, Hashable {
    /// The header name.
    public var name: String
    /// The header value.
    public var value: String

    /// Creates a header field.
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}
