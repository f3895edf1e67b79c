import CKernels
import IR

/// IdleViT's token selection (IDLEVIT.md §3.2-3.4) for one block.
///
/// score_j = mean over heads of q_cls,h . k_j,h = (q_cls . k_j) / heads, for image tokens j.
/// The class query is folded into the key projection: q_cls . k_j = (W_k^T q_cls) . x_j +
/// q_cls . b_k, all in Double from the Float32 LN1 rows. That is the same number as the
/// reference computes, without rounding k to Float32, so a different summation order cannot
/// flip a pick even at the ~2e-5 relative margins real DeiT weights produce. Picks are the
/// top `keep` by descending score, ties to the lower token index; the prefix tokens come first.
///
/// Speed: each product of two Floats is exact in Double, so only the order of the Double
/// sums differs from a scalar loop (relative 1e-16, far below any margin that matters).
/// The sums are the CKernels table's (`dot_ff`, `dot_df`, `axpy_rows_df`: eight Double lanes,
/// vectorised for the instruction set), in two parallel passes per call: the first cuts the
/// query's C outputs into `pieces` ranges and, for each, computes those q_cls entries and their
/// share of W_k^T q_cls; the second adds the shares in piece order and scores the tokens. The
/// number of pieces is fixed, so the sums never depend on the thread count. The first pass is
/// bound by reading 2 C^2 Floats of weights nothing has touched since the last run, so each
/// range reads its rows of W_q, then of W_k, as four quarters side by side (`dot4_ff`,
/// `axpy_rows_df`): four streams from memory per thread read ~20 GB/s on the Zen 2 host's two
/// threads, where one stream each read ~13.
enum TokenSelectKernel {
    /// Ranges of the query's outputs in the first pass (per image).
    static let pieces = 8

    static func scratchDoubles(batch: Int, tokens: Int, channels: Int) -> Int {
        // Per image: q_cls, the pieces' shares of W_k^T q_cls and of q_cls . b_k, their sum,
        // the scores, and the ranking's two Int32 arrays of up to `tokens` entries.
        batch * ((pieces + 2) * channels + pieces + 2 * tokens)
    }

    static func run(kernels: CPUKernels, x: UnsafePointer<Float>, batch: Int, tokens: Int, channels: Int,
                    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, heads: Int, keep: Int, prefix: Int,
                    scratch: UnsafeMutablePointer<Double>, y: UnsafeMutablePointer<Int32>, threads: Int) {
        let scores = score(kernels: kernels, x: x, batch: batch, tokens: tokens, channels: channels, weight: weight, bias: bias, heads: heads,
                           prefix: prefix, scratch: scratch, threads: threads)
        let selected = prefix + keep
        // After the scores: per image, the ranking and its merge scratch (tokens Int32 each).
        let rankings = UnsafeMutableRawPointer(scores + batch * tokens).assumingMemoryBound(to: Int32.self)
        parallelChunks(batch, threads: threads) { range in
            for b in range {
                let order = rankings + 2 * b * tokens
                rank(scores + b * tokens, prefix: prefix, tokens: tokens, into: order, scratch: order + tokens)
                let out = y + b * selected
                for p in 0..<prefix { out[p] = Int32(p) }
                for j in 0..<keep { out[prefix + j] = order[j] }
            }
        }
    }

    /// The image tokens by descending score, ties to the lower index, into `order`
    /// (`tokens - prefix` entries; `scratch` as many more).
    static func rank(_ s: UnsafePointer<Double>, prefix: Int, tokens: Int, into order: UnsafeMutablePointer<Int32>,
                     scratch: UnsafeMutablePointer<Int32>) {
        idv_rank_descending(s, prefix, tokens - prefix, order, scratch)
    }

    /// `rank` as an array, for `SelectionMargin`.
    static func ranking(_ s: UnsafePointer<Double>, prefix: Int, tokens: Int) -> [Int32] {
        let count = tokens - prefix
        guard count > 0 else { return [] }
        var scratch = [Int32](repeating: 0, count: count)
        return [Int32](unsafeUninitializedCapacity: count) { order, initialized in
            scratch.withUnsafeMutableBufferPointer { scratch in
                rank(s, prefix: prefix, tokens: tokens, into: order.baseAddress!, scratch: scratch.baseAddress!)
            }
            initialized = count
        }
    }

    /// Fills the scratch with every image token's score; returns where the scores [batch, tokens]
    /// start (prefix entries unset).
    static func score(kernels: CPUKernels, x: UnsafePointer<Float>, batch: Int, tokens: Int, channels: Int,
                      weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, heads: Int, prefix: Int,
                      scratch: UnsafeMutablePointer<Double>, threads: Int) -> UnsafeMutablePointer<Double> {
        let c = channels
        let pieces = Self.pieces
        let query = scratch                        // [batch, C]: q_cls
        let shares = query + batch * c             // [batch, pieces, C]: each range's W_k^T q_cls
        let offsets = shares + batch * pieces * c  // [batch, pieces]: each range's q_cls . b_k
        let folded = offsets + batch * pieces      // [batch, C]: W_k^T q_cls
        let scores = folded + batch * c            // [batch, tokens], then the rankings (`run`)
        // Per image: 2 C^2 + N C multiply-adds, over 2 C^2 Floats of weights that are rarely in
        // cache (1.2 MB for DeiT-S: the pass is memory-bound). Waking a thread for less than
        // ~256 K of them costs more than it saves (DeiT-Ti at batch 1).
        let threads = batch * (2 * c * c + tokens * c) < 1 << 18 ? 1 : threads
        let chunk = (c + pieces - 1) / pieces
        let table = kernels.table

        // q_cls = W_q x_0 + b_q (rows [0, C) of the qkv weight) and W_k^T q_cls (rows [C, 2C)),
        // a range of q_cls's outputs per task.
        parallelTasks(batch * pieces, threads: threads) { task, _ in
            let (b, piece) = (task / pieces, task % pieces)
            let o0 = min(c, piece * chunk), o1 = min(c, o0 + chunk)
            let x0 = x + b * tokens * c
            var offset = 0.0
            // The range's rows of W_q as four quarters read side by side (`dot4_ff`: four
            // streams from memory instead of one), then the rows left over one by one.
            let quarter = (o1 - o0) / 4
            for t in 0..<quarter {
                table.pointee.dot4_ff(weight + (o0 + t) * c, quarter * c, x0, c, query + b * c + o0 + t, quarter)
            }
            for o in o0 + 4 * quarter..<o1 { query[b * c + o] = table.pointee.dot_ff(weight + o * c, x0, c) }
            for o in o0..<o1 {
                let q = Double(bias[o]) + query[b * c + o]
                query[b * c + o] = q
                offset += q * Double(bias[c + o])
            }
            offsets[b * pieces + piece] = offset
            table.pointee.axpy_rows_df(weight + (c + o0) * c, c, o1 - o0, query + b * c + o0, c, shares + (b * pieces + piece) * c)
        }
        for b in 0..<batch {
            let sum = folded + b * c
            for i in 0..<c { sum[i] = 0 }
            for piece in 0..<pieces {
                let share = shares + (b * pieces + piece) * c
                for i in 0..<c { sum[i] += share[i] }
            }
        }
        // score_j = (folded . x_j + q_cls . b_k) / heads.
        let image = tokens - prefix
        parallelChunks(batch * image, threads: threads, grain: 32) { range in
            var b = -1
            var offset = 0.0
            for task in range {
                if task / image != b {
                    b = task / image
                    offset = 0
                    for piece in 0..<pieces { offset += offsets[b * pieces + piece] }
                }
                let t = prefix + task % image
                scores[b * tokens + t] = (table.pointee.dot_df(folded + b * c, x + (b * tokens + t) * c, c) + offset) / Double(heads)
            }
        }
        return scores
    }
}

/// How close each image's selection came to a tie, for `verify`: (score of the last token
/// picked - score of the first left out) / max |score| over the image tokens, from the same
/// double-precision scores the kernel ranks. A selection that differs from PyTorch's where this
/// is below ~1e-6 is float32 rounding deciding a near tie; one that differs at a clear margin is
/// a bug. nil when the layer keeps no image token or all of them.
public enum SelectionMargin {
    public static func relative(x: FloatTensor, weight: FloatTensor, bias: FloatTensor?, heads: Int, keep: Int, prefix: Int) -> [Double?] {
        let (batch, tokens, channels) = (x.shape[0], x.shape[1], x.shape[2])
        guard keep > 0, prefix + keep < tokens else { return Array(repeating: nil, count: batch) }
        var scratch = [Double](repeating: 0, count: TokenSelectKernel.scratchDoubles(batch: batch, tokens: tokens, channels: channels))
        let kernels = CPUKernels.best
        // Without a qkv bias, the query's and the key's (the first 2 C entries) are zeros.
        let zeros = [Float](repeating: 0, count: 2 * channels)
        return scratch.withUnsafeMutableBufferPointer { buffer in
            zeros.withUnsafeBufferPointer { zeros in
                let scores = TokenSelectKernel.score(kernels: kernels, x: x.pointer, batch: batch, tokens: tokens, channels: channels,
                                                     weight: weight.pointer, bias: bias?.pointer ?? zeros.baseAddress!, heads: heads,
                                                     prefix: prefix, scratch: buffer.baseAddress!, threads: 1)
                return (0..<batch).map { b in
                    let s = scores + b * tokens
                    let order = TokenSelectKernel.ranking(s, prefix: prefix, tokens: tokens)
                    let largest = (prefix..<tokens).reduce(0.0) { max($0, abs(s[$1])) }
                    guard largest > 0 else { return 0 }
                    return (s[Int(order[keep - 1])] - s[Int(order[keep])]) / largest
                }
            }
        }
    }
}
