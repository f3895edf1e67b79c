/// IdleViT's token selection (IDLEVIT.md §3.2-3.4) for one block.
///
/// score_j = mean over heads of q_cls,h . k_j,h = (q_cls . k_j) / heads, for image tokens j.
/// The class query is folded into the key projection: q_cls . k_j = (W_k^T q_cls) . x_j +
/// q_cls . b_k, all in Double from the Float32 LN1 rows. That is the same number as the
/// reference computes, without rounding k to Float32, so a different summation order cannot
/// flip a pick even at the ~2e-5 relative margins real DeiT weights produce. Picks are the
/// top `keep` by descending score, ties to the lower token index; the prefix tokens come first.
enum TokenSelectKernel {
    static func scratchDoubles(channels: Int) -> Int { 2 * channels }

    static func run(x: UnsafePointer<Float>, batch: Int, tokens: Int, channels: Int,
                    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, heads: Int, keep: Int, prefix: Int,
                    scratch: UnsafeMutablePointer<Double>, y: UnsafeMutablePointer<Int32>, threads: Int) {
        let c = channels
        let selected = prefix + keep
        let query = scratch
        let folded = scratch + c
        for b in 0..<batch {
            let rows = x + b * tokens * c
            // q_cls = W_q x_0 + b_q  (rows [0, C) of the qkv weight)
            for o in 0..<c {
                let w = weight + o * c
                var sum = Double(bias[o])
                for i in 0..<c { sum += Double(w[i]) * Double(rows[i]) }
                query[o] = sum
            }
            // folded = W_k^T q_cls  (rows [C, 2C)), offset = q_cls . b_k
            for i in 0..<c { folded[i] = 0 }
            var offset = 0.0
            for o in 0..<c {
                let w = weight + (c + o) * c
                let q = query[o]
                offset += q * Double(bias[c + o])
                for i in 0..<c { folded[i] += q * Double(w[i]) }
            }
            var scored: [(score: Double, token: Int32)] = []
            scored.reserveCapacity(tokens - prefix)
            for t in prefix..<tokens {
                let row = rows + t * c
                var sum = offset
                for i in 0..<c { sum += folded[i] * Double(row[i]) }
                scored.append((sum / Double(heads), Int32(t)))
            }
            scored.sort { $0.score != $1.score ? $0.score > $1.score : $0.token < $1.token }
            let out = y + b * selected
            for p in 0..<prefix { out[p] = Int32(p) }
            for j in 0..<keep { out[prefix + j] = scored[j].token }
        }
    }
}
