/// `add` (with the second operand broadcast over the batch when it has a leading 1), `scale`
/// by a per-channel gamma, and `mean` of several same-shaped values. Each may write over its
/// first operand.
enum ElementwiseKernel {
    static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int, broadcastPeriod: Int,
                    y: UnsafeMutablePointer<Float>, threads: Int) {
        // Whole periods per task, so the broadcast operand is indexed without a modulo.
        let periods = count / broadcastPeriod
        if periods > 1 {
            parallelChunks(periods, threads: threads, grain: max(1, (1 << 15) / broadcastPeriod)) { range in
                for p in range {
                    let offset = p * broadcastPeriod
                    addRange(a + offset, b, count: broadcastPeriod, y: y + offset)
                }
            }
        } else {
            parallelChunks(count, threads: threads, grain: 1 << 15) { range in
                addRange(a + range.lowerBound, b + range.lowerBound, count: range.count, y: y + range.lowerBound)
            }
        }
    }

    @inline(__always)
    static func addRange(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int, y: UnsafeMutablePointer<Float>) {
        var i = 0
        while i < count {
            let n = min(8, count - i)
            VectorMath.store(VectorMath.load(a + i, count: n) + VectorMath.load(b + i, count: n), y + i, count: n)
            i += 8
        }
    }

    /// `y[r, c] = x[r, c] * gamma[c]` (LayerScale); may write over `x`.
    static func scale(_ x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, rows: Int, channels: Int, y: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let offset = r * channels
            var c = 0
            while c < channels {
                let n = min(8, channels - c)
                VectorMath.store(VectorMath.load(x + offset + c, count: n) * VectorMath.load(gamma + c, count: n), y + offset + c, count: n)
                c += 8
            }
        }
    }

    static func mean(_ inputs: [UnsafePointer<Float>], count: Int, y: UnsafeMutablePointer<Float>) {
        let scale = 1 / Float(inputs.count)
        for i in 0..<count {
            var sum: Float = 0
            for input in inputs { sum += input[i] }
            y[i] = sum * scale
        }
    }
}
