import CKernels

/// Multi-head scaled dot-product attention by the fused CKernels kernel: for each (image,
/// head, block of queries), `K Q^T`, the softmax and `P V` in one pass whose scores never
/// exceed tokens x NR floats, in L1 (the full score matrix is never written). q, k and v are
/// read in place with a row stride (3C inside a fused qkv, C when separate).
///
/// Tasks are (image, head, query block), claimed by the threads as they go; heads are cut into
/// query blocks only as far as needed for two tasks per thread (DeiT-Ti's 3 heads at batch 1).
/// Every query's result is computed the same way whichever task holds it.
enum AttentionKernel {
    static func scratchFloats(kernels: CPUKernels, tokens: Int, headDimension: Int, threads: Int) -> Int {
        slotFloats(kernels: kernels, tokens: tokens, headDimension: headDimension) * max(threads, 1)
    }

    private static func slotFloats(kernels: CPUKernels, tokens: Int, headDimension: Int) -> Int {
        (kernels.table.pointee.attention_workspace_floats(tokens, headDimension) + 15) / 16 * 16
    }

    static func run(kernels: CPUKernels, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, rowStride: Int,
                    batch: Int, tokens: Int, channels: Int, heads: Int,
                    scratch: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, threads: Int, queries: Int) {
        // `queries`: the first rows of each image that attend (all `tokens`, or fewer under
        // row demand); keys and values are still every token.
        let d = channels / heads
        let pairs = batch * heads
        let nr = kernels.nr
        let tiles = (queries + nr - 1) / nr
        let blocksPerPair = min(tiles, max(1, (2 * threads + pairs - 1) / pairs))
        let blockQueries = (tiles + blocksPerPair - 1) / blocksPerPair * nr
        let blocks = (queries + blockQueries - 1) / blockQueries
        let slot = slotFloats(kernels: kernels, tokens: tokens, headDimension: d)
        let scale = 1 / Float(d).squareRoot()
        let table = kernels.table
        parallelTasks(pairs * blocks, threads: min(threads, pairs * blocks)) { task, worker in
            let pair = task / blocks
            let (b, h) = (pair / heads, pair % heads)
            let first = (task % blocks) * blockQueries
            let base = b * tokens * rowStride + h * d
            var head = IdvAttentionHead(q: q + base, k: k + base, v: v + base, row_stride: rowStride, tokens: tokens,
                                        head_dim: d, scale: scale, out: y + b * tokens * channels + h * d, out_stride: channels)
            table.pointee.attention(&head, first, min(queries, first + blockQueries), scratch + worker * slot)
        }
    }
}
