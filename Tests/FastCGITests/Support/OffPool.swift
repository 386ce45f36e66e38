import Foundation

/// Runs blocking test code (a client waiting for a reply) on a thread of its
/// own, so an async test never blocks Swift concurrency's cooperative pool: on
/// two cores that pool has two threads, and an in-process server's async
/// handlers need them to answer the very request the test waits for.
enum OffPool {
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try body() }) }
            thread.start()
        }
    }
}

/// A value handed from one thread to the next, used by one at a time (a client
/// connection the test opens on one `OffPool` thread and reads on another).
final class Lent<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
