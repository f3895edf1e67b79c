import CBLAS

/// What a linear layer does around its matrix product; fused at plan time when the plain
/// product is not needed by anything else (see `Program`).
enum LinearEpilogue {
    /// y = x W^T + b
    case bias
    /// y = gelu(x W^T + b): fc1 and the MLP's activation in one pass over hot rows.
    case gelu
    /// y = r + (x W^T + b): attn.proj / mlp.fc2 with their residual add; `r` may be `y`.
    case residual(UnsafePointer<Float>)
}

/// `y[m, o] = x[m, :] . W[o, :] + b[o]`, then the epilogue.
///
/// Threads split the output columns (weight rows) for one image's rows, or the rows for a
/// batch: each task calls single-threaded OpenBLAS on its tile and finishes it (bias,
/// residual, GELU) while it is still in cache. Doing the threading here rather than in OpenBLAS keeps one pool of
/// threads busy instead of two pools spinning against each other on a small machine, and
/// lets the epilogue run in parallel too. Very long row counts are cut into row blocks
/// (`maxBlockRows`).
/// The split is static, so results are deterministic for a given thread count.
enum LinearKernel {
    /// Below this many multiply-adds a product runs on one thread: waking a worker costs more.
    static let parallelThreshold = 1 << 20
    /// Rows per sgemm call. Each call packs its slice of W again, so calls should be long;
    /// only beyond this do the output rows of a call outgrow the caches the epilogue reads.
    static let maxBlockRows = 2048

    /// `xStride` / `yStride`: elements from one row of x / of y and the residual to the next
    /// (default: packed rows), so a kernel can run on one token row of every image.
    static func run(x: UnsafePointer<Float>, rows: Int, inFeatures: Int,
                    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, outFeatures: Int,
                    epilogue: LinearEpilogue = .bias, y: UnsafeMutablePointer<Float>, threads: Int,
                    xStride: Int? = nil, yStride: Int? = nil) {
        guard rows > 0, outFeatures > 0 else { return }
        let xStride = xStride ?? inFeatures
        let yStride = yStride ?? outFeatures
        if xStride != inFeatures || yStride != outFeatures {
            // Strided rows (row demand): few rows, one thread, one call.
            slice(x: x, xStride: xStride, rows: rows, inFeatures: inFeatures, weight: weight, bias: bias,
                  yStride: yStride, columns: 0..<outFeatures, epilogue: epilogue, rowOffset: 0, y: y)
            return
        }
        let work = rows * outFeatures * inFeatures
        if blasThreading && threads > 1 && work >= parallelThreshold {
            runThreadedBLAS(x: x, rows: rows, inFeatures: inFeatures, weight: weight, bias: bias, outFeatures: outFeatures,
                            epilogue: epilogue, y: y, threads: threads)
            return
        }
        let parts = work < parallelThreshold ? 1 : threads
        // Splitting the columns makes every thread pack all of x (rows x K) again; splitting
        // the rows makes every thread pack all of W (out x K). Duplicate the smaller one:
        // columns for one image's ~200 rows, rows for a batch of them.
        let byRows = parts > 1 && rows > outFeatures && rows >= 64 * parts
        let columnParts = byRows ? 1 : max(1, min(parts, outFeatures / 32))
        let rowParts = byRows ? parts : 1
        // Column slices in multiples of 16 floats: whole cache lines and whole SIMD vectors.
        let width = ((outFeatures + columnParts - 1) / columnParts + 15) / 16 * 16
        let rowChunk = (rows + rowParts - 1) / rowParts
        parallelTasks(columnParts * rowParts, threads: parts) { part, _ in
            let start = (part % columnParts) * width
            let end = min(outFeatures, start + width)
            let firstRow = (part / columnParts) * rowChunk
            let lastRow = min(rows, firstRow + rowChunk)
            guard start < end else { return }
            var m = firstRow
            while m < lastRow {
                let count = min(maxBlockRows, lastRow - m)
                slice(x: x + m * inFeatures, xStride: inFeatures, rows: count, inFeatures: inFeatures, weight: weight, bias: bias,
                      yStride: outFeatures, columns: start..<end, epilogue: epilogue, rowOffset: m, y: y + m * outFeatures)
                m += count
            }
        }
    }

    /// `IDLEVIT_GEMM_BLAS=1`: one sgemm threaded by OpenBLAS itself, the prologue and the
    /// epilogue as separate parallel passes over rows. Kept to measure against the split.
    static let blasThreading = environmentFlag("IDLEVIT_GEMM_BLAS") ?? false

    private static func runThreadedBLAS(x: UnsafePointer<Float>, rows: Int, inFeatures: Int, weight: UnsafePointer<Float>,
                                        bias: UnsafePointer<Float>, outFeatures: Int, epilogue: LinearEpilogue,
                                        y: UnsafeMutablePointer<Float>, threads: Int) {
        parallelChunks(rows, threads: threads, grain: 16) { range in
            for m in range {
                let out = y + m * outFeatures
                switch epilogue {
                case .bias, .gelu:
                    out.update(from: bias, count: outFeatures)
                case .residual(let r):
                    ElementwiseKernel.addRange(r + m * outFeatures, bias, count: outFeatures, y: out)
                }
            }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(outFeatures), Int32(inFeatures),
                    1, x, Int32(inFeatures), weight, Int32(inFeatures), 1, y, Int32(outFeatures))
        if case .gelu = epilogue {
            parallelChunks(rows, threads: threads, grain: 16) { range in
                for m in range { GELUKernel.apply(y + m * outFeatures, count: outFeatures, y: y + m * outFeatures) }
            }
        }
    }

    @inline(__always)
    private static func slice(x: UnsafePointer<Float>, xStride: Int, rows: Int, inFeatures: Int, weight: UnsafePointer<Float>,
                              bias: UnsafePointer<Float>, yStride: Int, columns: Range<Int>, epilogue: LinearEpilogue,
                              rowOffset: Int, y: UnsafeMutablePointer<Float>) {
        let o = columns.lowerBound
        let n = columns.count
        // Start from the bias (plus the residual), and let sgemm accumulate onto it (beta = 1):
        // with beta = 0 OpenBLAS would spend the same pass zeroing the output.
        for m in 0..<rows {
            let out = y + m * yStride + o
            switch epilogue {
            case .bias, .gelu:
                out.update(from: bias + o, count: n)
            case .residual(let r):
                ElementwiseKernel.addRange(r + (rowOffset + m) * yStride + o, bias + o, count: n, y: out)
            }
        }
        if rows == 1 {
            // A single row (the class token of one image): sgemm would first pack all of W;
            // sgemv streams it once.
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(inFeatures), 1, weight + o * inFeatures, Int32(inFeatures),
                        x, 1, 1, y + o, 1)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(n), Int32(inFeatures),
                        1, x, Int32(xStride), weight + o * inFeatures, Int32(inFeatures), 1, y + o, Int32(yStride))
        }
        if case .gelu = epilogue {
            for m in 0..<rows {
                let out = y + m * yStride + o
                GELUKernel.apply(out, count: n, y: out)
            }
        }
    }
}
