#if canImport(Glibc)
import Glibc
#endif
import CKernels

/// A weight matrix in the GEMM microkernel's layout: panels of NR output rows, each K-major
/// (`panel[k][j] = W[p * NR + j, k]`), the last panel zero-padded.
struct PackedMatrix: @unchecked Sendable {
    let panels: UnsafePointer<Float>
    /// Output features (rows of the original matrix that were packed) and input features.
    let outFeatures: Int
    let inFeatures: Int
    let nr: Int

    var panelCount: Int { (outFeatures + nr - 1) / nr }

    /// The output features `range` as a matrix of their own, when it starts on a panel
    /// boundary and ends on one or at the end (nil otherwise).
    func features(_ range: Range<Int>) -> PackedMatrix? {
        guard range.lowerBound % nr == 0, range.upperBound % nr == 0 || range.upperBound == outFeatures,
              range.upperBound <= outFeatures, !range.isEmpty else { return nil }
        return PackedMatrix(panels: panels + range.lowerBound / nr * inFeatures * nr, outFeatures: range.count,
                            inFeatures: inFeatures, nr: nr)
    }
}

/// The linear layers' (and the patch embedding's) weights, packed once when the interpreter
/// is made, into memory it owns and backs with 2 MB pages where the kernel allows
/// (`MADV_HUGEPAGE`: a panel walk then stays within a few TLB entries).
///
/// This is the only copy the products read: it replaces the row-major copy the OpenBLAS
/// engine kept, so memory does not grow, and no product repacks its weights per call
/// (OpenBLAS packs its B panels on every call, ~10% of a run at batch 1). Packing DeiT-B's 86 M
/// weights takes a pass over them, split over the worker threads. `token_select` still reads
/// the original qkv weight from the mapping, in Double, as IDLEVIT.md prescribes.
final class PackedWeights: @unchecked Sendable {
    /// A matrix to pack: `rows` rows starting at row `start` of the `k`-column matrix at `source`.
    struct Request: Hashable {
        var source: UnsafePointer<Float>
        var start: Int
        var rows: Int
        var k: Int
    }

    private var base: UnsafeMutableRawPointer?
    private var matrices: [Request: PackedMatrix] = [:]
    private(set) var byteCount = 0

    static let hugePage = 2 << 20

    /// `packed` is called with each request once its matrix is packed (the interpreter drops
    /// the source's file pages there when nothing else reads them, so the two copies are
    /// never resident together).
    init(_ requests: [Request], nr: Int, threads: Int, packed: (Request) -> Void = { _ in }) throws(InterpreterError) {
        var unique: [Request] = []
        for request in requests where !unique.contains(request) { unique.append(request) }
        // Each matrix starts on a cache line.
        var offsets: [Int] = []
        var total = 0
        for request in unique {
            offsets.append(total)
            total += (idv_packed_floats(request.rows, request.k, nr) * 4 + 63) / 64 * 64
        }
        guard total > 0 else { return }
        byteCount = (total + PackedWeights.hugePage - 1) / PackedWeights.hugePage * PackedWeights.hugePage
        var memory: UnsafeMutableRawPointer?
        guard posix_memalign(&memory, PackedWeights.hugePage, byteCount) == 0, let memory else {
            throw .resources("cannot allocate \(byteCount) bytes for the packed weights")
        }
        _ = madvise(memory, byteCount, MADV_HUGEPAGE)
        base = memory

        // One matrix at a time, its panels split between the threads in tasks of up to 16.
        for (i, request) in unique.enumerated() {
            let out = (memory + offsets[i]).assumingMemoryBound(to: Float.self)
            let panels = (request.rows + nr - 1) / nr
            let tasks = (panels + 15) / 16
            parallelTasks(tasks, threads: threads) { t, _ in
                idv_pack_panels(request.source + request.start * request.k, request.rows, request.k, nr, t * 16,
                                min(panels, t * 16 + 16), out)
            }
            matrices[request] = PackedMatrix(panels: UnsafePointer(out), outFeatures: request.rows, inFeatures: request.k, nr: nr)
            packed(request)
        }
    }

    deinit { free(base) }

    func matrix(_ request: Request) -> PackedMatrix? { matrices[request] }
}
