// OS threads and a condition variable, on pthreads: the engines run one OS thread
// per worker (SPEC §2), never Swift concurrency tasks, because handlers block.
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// An OS thread.
struct OSThread: @unchecked Sendable {
    let handle: pthread_t

    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// The calling thread's id (for "is this that thread?").
    static var currentID: UInt { UInt(pthread_self()) }

    /// Starts `body` on a new detached thread.
    @discardableResult
    static func spawn(stackSize: Int = 512 << 10, _ body: @escaping @Sendable () -> Void) throws(ServerError) -> OSThread {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, stackSize)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        var handle = pthread_t()
        let rc = pthread_create(
            &handle, &attributes,
            { raw in
                let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                box.body()
                return nil
            }, context)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(context).release()
            throw ServerError("cannot start a thread: \(String(cString: strerror(rc)))", cause: .system(errno: rc))
        }
        return OSThread(handle: handle)
    }
}

/// A mutex with a condition variable, guarding a value of type `State`.
final class Guarded<State>: @unchecked Sendable {
    /// The mutex and the condition, in one allocation (one malloc less for
    /// each of the several a connection and a request make).
    private let storage: UnsafeMutableRawPointer
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    private static var conditionOffset: Int {
        let align = MemoryLayout<pthread_cond_t>.alignment
        return (MemoryLayout<pthread_mutex_t>.stride + align - 1) / align * align
    }
    // Only touched with the mutex held, so Swift's dynamic exclusivity check (a
    // runtime call and a thread-local lookup per access, on every lock) adds nothing.
    @exclusivity(unchecked) private var state: State
    /// Threads in `wait` (guarded by the mutex): without any, a change needs no
    /// broadcast, which keeps the common uncontended path to a lock and an unlock.
    @exclusivity(unchecked) private var waiters = 0

    init(_ state: State) {
        self.state = state
        storage = UnsafeMutableRawPointer.allocate(
            byteCount: Self.conditionOffset + MemoryLayout<pthread_cond_t>.size,
            alignment: max(MemoryLayout<pthread_mutex_t>.alignment, MemoryLayout<pthread_cond_t>.alignment))
        mutex = storage.bindMemory(to: pthread_mutex_t.self, capacity: 1)
        condition = (storage + Self.conditionOffset).bindMemory(to: pthread_cond_t.self, capacity: 1)
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        storage.deallocate()
    }

    /// Runs `body` with the lock held and wakes every waiter afterwards (after
    /// the unlock: woken under the lock, a waiter would wake only to wait for
    /// the mutex).
    func withLock<R>(_ body: (inout State) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer {
            let wake = waiters > 0
            pthread_mutex_unlock(mutex)
            if wake { pthread_cond_broadcast(condition) }
        }
        return try body(&state)
    }

    /// Waits until `predicate` holds or `timeout` seconds pass (nil: forever), then
    /// runs `body` with the lock held. Returns nil on timeout.
    func wait<R>(until predicate: (State) -> Bool, timeout: Double? = nil, _ body: (inout State) -> R) -> R? {
        pthread_mutex_lock(mutex)
        var wakeOthers = false
        defer {
            pthread_mutex_unlock(mutex)
            if wakeOthers { pthread_cond_broadcast(condition) }
        }
        var deadline = timespec()
        if let timeout {
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            let nanos = Int(deadline.tv_nsec) + Int((timeout - timeout.rounded(.down)) * 1e9)
            deadline.tv_sec += Int(timeout.rounded(.down)) + nanos / 1_000_000_000
            deadline.tv_nsec = nanos % 1_000_000_000
        }
        waiters += 1
        defer { waiters -= 1 }
        while !predicate(state) {
            if timeout != nil {
                if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT, !predicate(state) { return nil }
            } else {
                pthread_cond_wait(condition, mutex)
            }
        }
        let result = body(&state)
        // `body` may have changed what another waiter waits for (a reader taking
        // input that a writer waits to see taken): wake the others, as withLock does.
        wakeOthers = waiters > 1
        return result
    }
}

/// A flag set by one thread and read by others.
final class AbortFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
    func reset() { value.store(false, ordering: .releasing) }
}
