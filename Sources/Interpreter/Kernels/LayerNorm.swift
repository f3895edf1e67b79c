/// LayerNorm over the last axis with biased variance, as PyTorch computes it: mean first,
/// then the mean of squared deviations (two passes, which keeps precision for large means).
enum LayerNormKernel {
    static func run(x: UnsafePointer<Float>, rows: Int, channels: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                    eps: Float, y: UnsafeMutablePointer<Float>, threads: Int) {
        parallelChunks(rows, threads: threads, grain: 64) { range in
            for r in range {
                let row = x + r * channels
                let out = y + r * channels
                var sum: Float = 0
                for c in 0..<channels { sum += row[c] }
                let mean = sum / Float(channels)
                var squares: Float = 0
                for c in 0..<channels {
                    let d = row[c] - mean
                    squares += d * d
                }
                let inverse = 1 / (squares / Float(channels) + eps).squareRoot()
                for c in 0..<channels { out[c] = (row[c] - mean) * inverse * weight[c] + bias[c] }
            }
        }
    }
}
