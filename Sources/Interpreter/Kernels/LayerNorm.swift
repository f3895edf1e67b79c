/// LayerNorm over the last axis with biased variance, as PyTorch computes it: mean first,
/// then the mean of squared deviations (two passes, which keeps precision for large means),
/// by the CKernels kernel of the interpreter's instruction set. Rows run in parallel.
enum LayerNormKernel {
    /// `xStride`: floats from one row of x to the next (y is packed).
    static func run(kernels: CPUKernels, x: UnsafePointer<Float>, xStride: Int? = nil, rows: Int, channels: Int,
                    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, eps: Float, y: UnsafeMutablePointer<Float>,
                    threads: Int) {
        let table = kernels.table
        let stride = xStride ?? channels
        parallelChunks(rows, threads: threads, grain: 32) { range in
            if stride == channels {
                table.pointee.layer_norm(x + range.lowerBound * channels, range.count, channels, channels, weight, bias, eps,
                                         y + range.lowerBound * channels)
            } else {
                for r in range {
                    table.pointee.layer_norm(x + r * stride, 1, channels, channels, weight, bias, eps, y + r * channels)
                }
            }
        }
    }
}
