/// Content-coding negotiation from an `Accept-Encoding` header (RFC 9110 §12.5.3).
enum AcceptEncoding {
    /// Whether a client sending `header` accepts a gzip-coded response.
    ///
    /// `gzip` (or its old alias `x-gzip`) with no weight or a weight above 0 accepts;
    /// `gzip;q=0` refuses even when `*` is listed; without a gzip entry, `*` with a
    /// weight above 0 accepts. No header, an empty one, or only other codings refuse.
    /// An entry whose weight cannot be read counts as a refusal.
    static func acceptsGzip(_ header: String?) -> Bool {
        guard let header else { return false }
        var gzip: Double?
        var wildcard: Double?
        for entry in header.split(separator: ",") {
            let parts = entry.split(separator: ";")
            guard let first = parts.first else { continue }
            let coding = first.trimmingSpaces.lowercased()
            var weight = 1.0
            for parameter in parts.dropFirst() {
                let pair = parameter.split(separator: "=", maxSplits: 1)
                guard pair.count == 2, pair[0].trimmingSpaces.lowercased() == "q" else { continue }
                weight = qvalue(pair[1].trimmingSpaces) ?? 0
            }
            switch coding {
            case "gzip", "x-gzip": gzip = max(gzip ?? 0, weight)
            case "*": wildcard = max(wildcard ?? 0, weight)
            default: break
            }
        }
        if let gzip { return gzip > 0 }
        return (wildcard ?? 0) > 0
    }

    /// A weight: `0`, `1`, or up to three decimals (`0.5`, `1.000`); nil if malformed.
    private static func qvalue(_ text: String) -> Double? {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, whole == "0" || whole == "1" else { return nil }
        if parts.count == 2 {
            let fraction = parts[1]
            guard fraction.count <= 3, fraction.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        }
        guard let value = Double(text.hasSuffix(".") ? text + "0" : text), value <= 1 else { return nil }
        return value
    }
}
