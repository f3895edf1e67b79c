/// LayerNorm over the last axis with biased variance, as PyTorch computes it: mean first,
/// then the mean of squared deviations (two passes, which keeps precision for large means).
/// Rows run in parallel; within a row, eight-lane partial sums (the order of a Float
/// reduction changes results only at the 1e-7 level, well inside parity).
enum LayerNormKernel {
    static func run(x: UnsafePointer<Float>, rows: Int, channels: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                    eps: Float, y: UnsafeMutablePointer<Float>, threads: Int) {
        parallelChunks(rows, threads: threads, grain: 32) { range in
            for r in range { row(x + r * channels, channels: channels, weight: weight, bias: bias, eps: eps, y: y + r * channels) }
        }
    }

    @inline(__always)
    static func row(_ x: UnsafePointer<Float>, channels: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                    eps: Float, y: UnsafeMutablePointer<Float>) {
        let n = Float(channels)
        var acc = Float8()
        var c = 0
        while c < channels {
            acc += VectorMath.load(x + c, count: channels - c)
            c += 8
        }
        let mean = acc.sum() / n
        var squares = Float8()
        c = 0
        while c + 8 <= channels {
            let d = VectorMath.load(x + c, count: 8) - mean
            squares += d * d
            c += 8
        }
        var squareSum = squares.sum()
        while c < channels {
            let d = x[c] - mean
            squareSum += d * d
            c += 1
        }
        let inverse = 1 / (squareSum / n + eps).squareRoot()
        c = 0
        while c < channels {
            let k = min(8, channels - c)
            let v = (VectorMath.load(x + c, count: k) - mean) * inverse * VectorMath.load(weight + c, count: k)
                + VectorMath.load(bias + c, count: k)
            VectorMath.store(v, y + c, count: k)
            c += 8
        }
    }
}
