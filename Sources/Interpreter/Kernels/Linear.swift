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

    /// The same epilogue for output rows starting `offset` elements further on.
    func advanced(by offset: Int) -> LinearEpilogue {
        if case .residual(let r) = self { return .residual(r + offset) }
        return self
    }
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
                  yStride: yStride, columns: 0..<outFeatures, epilogue: epilogue, y: y)
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
                      yStride: outFeatures, columns: start..<end, epilogue: epilogue.advanced(by: m * outFeatures),
                      y: y + m * outFeatures)
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
        let columns = 0..<outFeatures
        parallelChunks(rows, threads: threads, grain: 16) { range in
            start(range, columns: columns, bias: bias, epilogue: epilogue, yStride: outFeatures, y: y)
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(outFeatures), Int32(inFeatures),
                    1, x, Int32(inFeatures), weight, Int32(inFeatures), 1, y, Int32(outFeatures))
        if case .gelu = epilogue {
            parallelChunks(rows, threads: threads, grain: 16) { range in
                finishGELU(range, columns: columns, yStride: outFeatures, y: y)
            }
        }
    }

    /// Output rows `rows` (columns `columns`) set to the bias, plus the residual: sgemm then
    /// accumulates onto them (beta = 1); with beta = 0 OpenBLAS would spend the same pass
    /// zeroing the output.
    @inline(__always)
    private static func start(_ rows: Range<Int>, columns: Range<Int>, bias: UnsafePointer<Float>, epilogue: LinearEpilogue,
                              yStride: Int, y: UnsafeMutablePointer<Float>) {
        let (o, n) = (columns.lowerBound, columns.count)
        for m in rows {
            let out = y + m * yStride + o
            switch epilogue {
            case .bias, .gelu:
                out.update(from: bias + o, count: n)
            case .residual(let r):
                ElementwiseKernel.addRange(r + m * yStride + o, bias + o, count: n, y: out)
            }
        }
    }

    /// GELU over output rows `rows` (columns `columns`) in place, after the product.
    @inline(__always)
    private static func finishGELU(_ rows: Range<Int>, columns: Range<Int>, yStride: Int, y: UnsafeMutablePointer<Float>) {
        for m in rows {
            let out = y + m * yStride + columns.lowerBound
            GELUKernel.apply(out, count: columns.count, y: out)
        }
    }

    @inline(__always)
    private static func slice(x: UnsafePointer<Float>, xStride: Int, rows: Int, inFeatures: Int, weight: UnsafePointer<Float>,
                              bias: UnsafePointer<Float>, yStride: Int, columns: Range<Int>, epilogue: LinearEpilogue,
                              y: UnsafeMutablePointer<Float>) {
        let o = columns.lowerBound
        let n = columns.count
        start(0..<rows, columns: columns, bias: bias, epilogue: epilogue, yStride: yStride, y: y)
        if rows == 1 {
            // A single row (the class token of one image): sgemm would first pack all of W;
            // sgemv streams it once.
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(inFeatures), 1, weight + o * inFeatures, Int32(inFeatures),
                        x, 1, 1, y + o, 1)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(n), Int32(inFeatures),
                        1, x, Int32(xStride), weight + o * inFeatures, Int32(inFeatures), 1, y + o, Int32(yStride))
        }
        if case .gelu = epilogue { finishGELU(0..<rows, columns: columns, yStride: yStride, y: y) }
    }
}
