/// The numerically safe exponentiation step of a softmax row: subtract the row maximum
/// (so every argument is <= 0 and nothing overflows), exponentiate with `VectorMath.exp`,
/// return the sum. The caller divides by the sum wherever that is cheapest.
enum SoftmaxKernel {
    @inline(__always)
    static func exponentiate(_ row: UnsafeMutablePointer<Float>, count: Int) -> Float {
        var maxima = Float8(repeating: -.infinity)
        var i = 0
        while i + 8 <= count {
            maxima = VectorMath.maximum(maxima, VectorMath.load(row + i, count: 8))
            i += 8
        }
        var maximum = VectorMath.horizontalMax(maxima)
        while i < count {
            maximum = max(maximum, row[i])
            i += 1
        }
        var sums = Float8()
        i = 0
        while i + 8 <= count {
            let e = VectorMath.expNonPositive(VectorMath.load(row + i, count: 8) - maximum)
            VectorMath.store(e, row + i, count: 8)
            sums += e
            i += 8
        }
        var sum = sums.sum()
        if i < count {
            // Only the real lanes of the tail: padded lanes hold exp(-maximum).
            let n = count - i
            let e = VectorMath.expNonPositive(VectorMath.load(row + i, count: n) - maximum)
            VectorMath.store(e, row + i, count: n)
            for lane in 0..<n { sum += e[lane] }
        }
        return sum
    }
}
