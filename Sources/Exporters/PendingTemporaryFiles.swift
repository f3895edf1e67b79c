#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The temporary files of uncommitted `AtomicFile`s, kept where a signal handler can delete
/// them safely.
///
/// A SIGINT/SIGTERM handler may run while the interrupted thread holds any lock or is inside
/// malloc, so it may only call async-signal-safe functions (`unlink`, `_exit`) and must not
/// lock, allocate or touch reference counts. The paths therefore live in one table allocated
/// before the handler is installed: a fixed number of slots, each a fixed-size C string and an
/// atomic state (free, being written, ready). Registering claims a free slot with a
/// compare-and-exchange, copies the path and publishes it with a release store; the handler
/// reads each state with an acquire load and unlinks the ready ones.
enum PendingTemporaryFiles {
    static let slotCount = 64
    static let pathCapacity = 4096

    private static let free = 0, writing = 1, ready = 2

    /// Allocated once by `prepare()` (the installer of the signal handler calls it, so the
    /// handler never runs a lazy initialiser) and never freed.
    nonisolated(unsafe) private static let states: UnsafeMutablePointer<Atomic<Int>> = {
        let states = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: slotCount)
        for i in 0..<slotCount { (states + i).initialize(to: Atomic(free)) }
        return states
    }()
    nonisolated(unsafe) private static let paths: UnsafeMutablePointer<CChar> = {
        let paths = UnsafeMutablePointer<CChar>.allocate(capacity: slotCount * pathCapacity)
        paths.initialize(repeating: 0, count: slotCount * pathCapacity)
        return paths
    }()

    /// Runs the lazy initialisers now, outside any signal handler.
    static func prepare() {
        _ = states
        _ = paths
    }

    /// Records `path`; returns its slot, or nil when the path is too long or every slot is
    /// taken (the file is then not removed on a signal, but still on an error).
    static func register(_ path: String) -> Int? {
        let bytes = Array(path.utf8)
        guard bytes.count < pathCapacity, !bytes.contains(0) else { return nil }
        for slot in 0..<slotCount {
            guard states[slot].compareExchange(expected: free, desired: writing, ordering: .acquiring).exchanged else { continue }
            let destination = paths + slot * pathCapacity
            for (i, byte) in bytes.enumerated() { destination[i] = CChar(bitPattern: byte) }
            destination[bytes.count] = 0
            states[slot].store(ready, ordering: .releasing)
            return slot
        }
        return nil
    }

    /// Forgets a slot (its file was renamed into place or deleted).
    static func unregister(_ slot: Int) {
        states[slot].store(free, ordering: .releasing)
    }

    /// Deletes every registered file. Async-signal-safe: atomic loads and unlink only.
    static func removeAll() {
        for slot in 0..<slotCount where states[slot].load(ordering: .acquiring) == ready {
            unlink(paths + slot * pathCapacity)
        }
    }
}
