#if canImport(Glibc)
import Glibc
#endif

/// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), the form timm's nn.GELU uses.
enum GELUKernel {
    static func run(x: UnsafePointer<Float>, count: Int, y: UnsafeMutablePointer<Float>, threads: Int) {
        let inverseSqrt2: Float = 0.70710678118654752
        parallelChunks(count, threads: threads, grain: 1 << 14) { range in
            for i in range {
                let v = x[i]
                y[i] = 0.5 * v * (1 + erff(v * inverseSqrt2))
            }
        }
    }
}
