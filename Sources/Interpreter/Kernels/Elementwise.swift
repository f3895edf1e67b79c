/// `add` (with the second operand broadcast over the batch when it has a leading 1) and
/// `mean` of several same-shaped values.
enum ElementwiseKernel {
    static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int, broadcastPeriod: Int,
                    y: UnsafeMutablePointer<Float>, threads: Int) {
        parallelChunks(count, threads: threads, grain: 1 << 15) { range in
            if broadcastPeriod == count {
                for i in range { y[i] = a[i] + b[i] }
            } else {
                for i in range { y[i] = a[i] + b[i % broadcastPeriod] }
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
