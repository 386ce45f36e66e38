/// One form field of ``Request/params``.
///
/// A plain field keeps its exact bytes: a value that is valid UTF-8 is ``text(_:)``
/// (its `utf8` view gives back the bytes that came), any other is ``binary(_:)``
/// — a file uploaded under a plain name, a Latin-1 form — and ``bytes`` reads
/// either. An uploaded file also keeps its filename and type, whatever its field's
/// name, in ``Request/files``.
public enum FormValue: Sendable, Hashable {
    /// A plain value, valid UTF-8.
    case text(String)
    /// A plain value whose bytes are not valid UTF-8, exactly as sent.
    case binary([UInt8])
    /// A whole MIME part (for names ending in `!`).
    case part(MIMEPart)
    /// Every value of a name ending in `*`, in order.
    case list([FormValue])

    /// A plain value from its bytes: text if they are valid UTF-8, else binary.
    init(plain bytes: [UInt8]) {
        if let text = String(validating: bytes, as: UTF8.self) { self = .text(text) } else { self = .binary(bytes) }
    }

    /// The value as text: the text itself, binary bytes or a part's body decoded
    /// (as UTF-8, or byte for byte as Latin-1 when they are not UTF-8), or a
    /// list's first.
    public var string: String? {
        switch self {
        case .text(let text): text
        case .binary(let bytes): String(losslessBytes: bytes)
        case .part(let part): String(losslessBytes: part.body)
        case .list(let items): items.first?.string
        }
    }

    /// The value's exact bytes: the text's UTF-8, the binary value, a part's body,
    /// or a list's first.
    public var bytes: [UInt8]? {
        switch self {
        case .text(let text): Array(text.utf8)
        case .binary(let bytes): bytes
        case .part(let part): part.body
        case .list(let items): items.first?.bytes
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

/// A part of a `multipart/form-data` body, as kept for field names ending in `!`
/// and for every uploaded file (``Request/files``).
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
