#if canImport(Glibc)
import Glibc
#endif
import CBLAS

/// Multi-head scaled dot-product attention over S tokens. q, k and v are read in place with a
/// row stride (3C inside a fused qkv, C when separate); each (image, head) pair computes
/// `softmax(Q K^T / sqrt(d)) V` in an S x S scratch of its own worker, and writes its d
/// columns of the `[S, C]` output, which is the heads concatenated.
enum AttentionKernel {
    static func scratchFloats(tokens: Int, threads: Int) -> Int { tokens * tokens * max(threads, 1) }

    static func run(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, rowStride: Int,
                    batch: Int, tokens: Int, channels: Int, heads: Int,
                    scratch: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, threads: Int) {
        let d = channels / heads
        let scale = 1 / Float(d).squareRoot()
        let tasks = batch * heads
        let workers = max(1, min(threads, tasks))
        let s = Int32(tokens)
        // Inside a parallel region each sgemm is small: keep OpenBLAS from spawning its own
        // threads on top of ours.
        if workers > 1 { openblas_set_num_threads(1) }
        defer { if workers > 1 { openblas_set_num_threads(Int32(threads)) } }
        let body: (Int) -> Void = { worker in
            let scores = scratch + worker * tokens * tokens
            var task = worker
            while task < tasks {
                let (b, h) = (task / heads, task % heads)
                let offset = b * tokens * rowStride + h * d
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s, s, Int32(d), scale,
                            q + offset, Int32(rowStride), k + offset, Int32(rowStride), 0, scores, s)
                for r in 0..<tokens { softmaxRow(scores + r * tokens, count: tokens) }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s, Int32(d), s, 1,
                            scores, s, v + offset, Int32(rowStride), 0, y + b * tokens * channels + h * d, Int32(channels))
                task += workers
            }
        }
        parallelWorkers(workers, body)
    }

    @inline(__always)
    static func softmaxRow(_ row: UnsafeMutablePointer<Float>, count: Int) {
        var maximum = -Float.infinity
        for i in 0..<count { maximum = max(maximum, row[i]) }
        var sum: Float = 0
        for i in 0..<count {
            let e = expf(row[i] - maximum)
            row[i] = e
            sum += e
        }
        let inverse = 1 / sum
        for i in 0..<count { row[i] *= inverse }
    }
}
