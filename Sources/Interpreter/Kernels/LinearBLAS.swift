import CBLAS

/// The OpenBLAS engine's linear layer (`MatrixBackend.openBLAS`), kept to measure the packed
/// kernels against: `y[m, o] = x[m, :] . W[o, :] + b[o]` with W as mapped from the file, then
/// the epilogue (GELU, or the residual; not LayerScale, which `Program` leaves unfused here).
///
/// Threads split the output columns (weight rows) for one image's rows, or the rows for a
/// batch: each task calls single-threaded OpenBLAS on its tile, which starts from the bias (plus
/// the residual; sgemm accumulates with beta = 1) and gets its GELU while it is in cache.
/// OpenBLAS packs its slice of W again on every call.
enum BLASLinearKernel {
    /// Rows per sgemm call. Each call packs its slice of W again, so calls should be long;
    /// only beyond this do the output rows of a call outgrow the caches the epilogue reads.
    static let maxBlockRows = 2048

    static func run(x: UnsafePointer<Float>, rows: Int, inFeatures: Int,
                    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, outFeatures: Int,
                    epilogue: LinearEpilogue = LinearEpilogue(), y: UnsafeMutablePointer<Float>, threads: Int,
                    xStride: Int? = nil, yStride: Int? = nil) {
        precondition(epilogue.scale == nil, "the OpenBLAS engine does not fuse LayerScale")
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
        let parts = work < LinearKernel.parallelThreshold ? 1 : threads
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

    /// Output rows `rows` (columns `columns`) set to the bias, plus the residual: sgemm then
    /// accumulates onto them (beta = 1); with beta = 0 OpenBLAS would spend the same pass
    /// zeroing the output.
    @inline(__always)
    private static func start(_ rows: Range<Int>, columns: Range<Int>, bias: UnsafePointer<Float>, epilogue: LinearEpilogue,
                              yStride: Int, y: UnsafeMutablePointer<Float>) {
        let (o, n) = (columns.lowerBound, columns.count)
        for m in rows {
            let out = y + m * yStride + o
            if let r = epilogue.residual {
                ElementwiseKernel.addRange(r + m * yStride + o, bias + o, count: n, y: out)
            } else {
                out.update(from: bias + o, count: n)
            }
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
        if epilogue.gelu {
            for m in 0..<rows {
                let out = y + m * yStride + o
                GELUKernel.apply(out, count: n, y: out)
            }
        }
    }
}
