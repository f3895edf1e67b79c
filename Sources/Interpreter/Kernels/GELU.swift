/// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), the form timm's nn.GELU uses. `run` (an unfused
/// `gelu` node) goes through the CKernels kernel of the interpreter's instruction set, the same
/// code the GEMM epilogue applies; `apply` is the OpenBLAS engine's, eight lanes at a time
/// through `VectorMath.gelu`. Tails go through the same vector code with padded lanes, so an
/// element's result never depends on where it sits in a row.
enum GELUKernel {
    static func run(kernels: CPUKernels, x: UnsafePointer<Float>, count: Int, y: UnsafeMutablePointer<Float>, threads: Int) {
        let table = kernels.table
        parallelChunks(count, threads: threads, grain: 1 << 14) { range in
            table.pointee.gelu(x + range.lowerBound, y + range.lowerBound, range.count)
        }
    }

    /// `y[i] = gelu(x[i])` for `count` elements in Swift; `y` may be `x`.
    @inline(__always)
    static func apply(_ x: UnsafePointer<Float>, count: Int, y: UnsafeMutablePointer<Float>) {
        var i = 0
        while i + 16 <= count {
            // Two independent vectors per iteration hide the divide's latency.
            let a = VectorMath.gelu(VectorMath.load(x + i, count: 8))
            let b = VectorMath.gelu(VectorMath.load(x + i + 8, count: 8))
            VectorMath.store(a, y + i, count: 8)
            VectorMath.store(b, y + i + 8, count: 8)
            i += 16
        }
        while i < count {
            let n = min(8, count - i)
            VectorMath.store(VectorMath.gelu(VectorMath.load(x + i, count: n)), y + i, count: n)
            i += n
        }
    }
}
