import CBLAS

/// `y[m, o] = x[m, :] . W[rowStart + o, :] + b[rowStart + o]`: the bias is written into y
/// first and sgemm accumulates onto it (beta = 1), so the bias costs no second pass.
enum LinearKernel {
    static func run(x: UnsafePointer<Float>, rows: Int, inFeatures: Int,
                    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, outFeatures: Int,
                    y: UnsafeMutablePointer<Float>, threads: Int) {
        guard rows > 0, outFeatures > 0 else { return }
        parallelChunks(rows, threads: threads, grain: 256) { range in
            for r in range { (y + r * outFeatures).update(from: bias, count: outFeatures) }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(outFeatures), Int32(inFeatures),
                    1, x, Int32(inFeatures), weight, Int32(inFeatures), 1, y, Int32(outFeatures))
    }
}
