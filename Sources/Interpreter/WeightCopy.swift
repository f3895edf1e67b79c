#if canImport(Glibc)
import Glibc
#endif
import IR

/// The matrices of the linear layers copied out of the mapped file into memory the
/// interpreter owns, backed by 2 MB pages where the kernel allows (`MADV_HUGEPAGE`).
///
/// OpenBLAS repacks a weight panel on every call, reading it with a stride of one row; from
/// a file mapping that walks a fresh 4 KB page (and TLB entry) every few rows, and the
/// product is slower by ~10-15% than from huge pages. Copying costs one pass over the weights
/// when the interpreter is made (tens of ms, and resident memory of the model's size, which
/// running needs anyway); opening a file stays O(header). `IDLEVIT_COPY_WEIGHTS=0` runs
/// straight from the mapping.
final class WeightCopy: @unchecked Sendable {
    private(set) var base: UnsafeMutableRawPointer?
    private var bytes = 0
    private var mapping: [UnsafePointer<Float>: UnsafePointer<Float>] = [:]

    static let hugePage = 2 << 20

    /// Copies every distinct constant in `tensors` (pointer, element count) into one block.
    init(_ tensors: [(pointer: UnsafePointer<Float>, count: Int)]) {
        var unique: [(UnsafePointer<Float>, Int)] = []
        var seen = Set<UnsafePointer<Float>>()
        for t in tensors where seen.insert(t.pointer).inserted { unique.append((t.pointer, t.count)) }
        // Each tensor starts on a cache line.
        let total = unique.reduce(0) { $0 + ($1.1 * 4 + 63) / 64 * 64 }
        guard total > 0 else { return }
        bytes = (total + WeightCopy.hugePage - 1) / WeightCopy.hugePage * WeightCopy.hugePage
        var memory: UnsafeMutableRawPointer?
        guard posix_memalign(&memory, WeightCopy.hugePage, bytes) == 0, let memory else { return }
        _ = madvise(memory, bytes, MADV_HUGEPAGE)
        base = memory
        var offset = 0
        for (pointer, count) in unique {
            let target = (memory + offset).assumingMemoryBound(to: Float.self)
            target.update(from: pointer, count: count)
            mapping[pointer] = UnsafePointer(target)
            offset += (count * 4 + 63) / 64 * 64
        }
    }

    deinit { free(base) }

    var byteCount: Int { bytes }

    func pointer(for original: UnsafePointer<Float>) -> UnsafePointer<Float> { mapping[original] ?? original }
}
