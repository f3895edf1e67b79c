import CBLAS

/// The OpenBLAS engine's attention (`MatrixBackend.openBLAS`), kept to measure the fused kernel
/// against. Multi-head scaled dot-product attention over S tokens. q, k and v are read in place with a
/// row stride (3C inside a fused qkv, C when separate), so nothing is split or transposed.
///
/// Work is (image, head, block of query rows) tasks, claimed by the threads as they go:
/// whole heads when they divide evenly, otherwise each head's queries are cut in two so that
/// DeiT-Ti's 3 heads (or an odd batch x heads) still keep both cores busy. A task computes
/// `Q_rows K^T / sqrt(d)` into its worker's scratch (rows x S), exponentiates each row in
/// place (vectorised), multiplies by V into its d output columns, and only then divides the
/// output rows by the row sums: d divisions per row instead of S.
enum BLASAttentionKernel {
    static func scratchFloats(tokens: Int, threads: Int) -> Int { (tokens * tokens + tokens) * max(threads, 1) }

    static func run(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, rowStride: Int,
                    batch: Int, tokens: Int, channels: Int, heads: Int,
                    scratch: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, threads: Int, queries: Int) {
        // `queries`: the first rows of each image that attend (all `tokens`, or fewer under
        // row demand); keys and values are still every token.
        let d = channels / heads
        let scale = 1 / Float(d).squareRoot()
        let pairs = batch * heads
        let workers = max(1, min(threads, pairs * queries / 16))
        var splits = 1
        while (pairs * splits) % workers != 0, splits < 4, queries / (splits * 2) >= 16 { splits *= 2 }
        let blockRows = (queries + splits - 1) / splits
        let tasks = pairs * splits
        let s = Int32(tokens)
        parallelTasks(tasks, threads: workers) { task, slot in
            let scores = scratch + slot * (tokens * tokens + tokens)
            let sums = scores + tokens * tokens
            let pair = task / splits
            let (b, h) = (pair / heads, pair % heads)
            let row0 = (task % splits) * blockRows
            let rows = min(blockRows, queries - row0)
            guard rows > 0 else { return }
            let base = b * tokens * rowStride + h * d
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), s, Int32(d), scale,
                        q + base + row0 * rowStride, Int32(rowStride), k + base, Int32(rowStride), 0, scores, s)
            for r in 0..<rows { sums[r] = SoftmaxKernel.exponentiate(scores + r * tokens, count: tokens) }
            let out = y + (b * tokens + row0) * channels + h * d
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(d), s, 1,
                        scores, s, v + base, Int32(rowStride), 0, out, Int32(channels))
            for r in 0..<rows {
                let inverse = 1 / sums[r]
                let row = out + r * channels
                var c = 0
                while c < d {
                    let n = min(8, d - c)
                    VectorMath.store(VectorMath.load(row + c, count: n) * inverse, row + c, count: n)
                    c += 8
                }
            }
        }
    }
}
