/// A map from request id to a value for the few requests in flight on one
/// connection: one at levels 0 and 1, at most
/// ``ConnectionLimits/maxRequestsPerConnection`` at level 2. Kept as two small
/// arrays searched from the most recent entry, which for a handful of entries
/// costs less than hashing an id on every record (several lookups per request).
public struct RequestTable<Value> {
    @usableFromInline var ids: [UInt16] = []
    @usableFromInline var entries: [Value] = []

    /// An empty table.
    @inlinable public init() {}

    @inlinable func slot(of id: UInt16) -> Int? {
        var i = ids.count
        while i > 0 {
            i -= 1
            if ids[i] == id { return i }
        }
        return nil
    }

    /// The value for `id`; assigning nil removes it.
    @inlinable public subscript(id: UInt16) -> Value? {
        get { slot(of: id).map { entries[$0] } }
        set {
            if let i = slot(of: id) {
                if let newValue {
                    entries[i] = newValue
                } else {
                    remove(at: i)
                }
            } else if let newValue {
                ids.append(id)
                entries.append(newValue)
            }
        }
    }

    @inlinable mutating func remove(at i: Int) {
        let last = ids.count - 1
        if i != last {
            ids.swapAt(i, last)
            entries.swapAt(i, last)
        }
        ids.removeLast()
        entries.removeLast()
    }

    /// Removes the value for `id` and returns it, or nil if there was none.
    @inlinable @discardableResult
    public mutating func removeValue(forKey id: UInt16) -> Value? {
        guard let i = slot(of: id) else { return nil }
        let value = entries[i]
        remove(at: i)
        return value
    }

    /// Number of entries.
    @inlinable public var count: Int { ids.count }
    /// Whether the table is empty.
    @inlinable public var isEmpty: Bool { ids.isEmpty }
    /// The values, in no particular order.
    @inlinable public var values: [Value] { entries }
}

extension RequestTable: Sendable where Value: Sendable {}
