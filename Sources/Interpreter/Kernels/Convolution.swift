import CBLAS

/// `conv2d` as a matrix product, one image at a time: the image is unfolded into columns
/// `[Ci*K*K, H'*W']` (im2col, rows in the weight's (c, ky, kx) order, zeros where the window
/// hangs over the padding), then `y[O, H'*W'] = W[O, Ci*K*K] x columns` writes NCHW directly.
/// Threads split the output positions: each unfolds and multiplies its own columns. The
/// optional bias (a BatchNorm folded by an exporter) is added per output channel afterwards.
enum Conv2dKernel {
    struct Geometry {
        var batch: Int
        var channels: Int
        var height: Int
        var width: Int
        var outChannels: Int
        var kernel: Int
        var stride: Int
        var padding: Int
        var outHeight: Int
        var outWidth: Int

        var positions: Int { outHeight * outWidth }
        var depth: Int { channels * kernel * kernel }
    }

    static func scratchFloats(_ g: Geometry) -> Int { g.depth * g.positions }

    static func run(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, _ g: Geometry,
                    columns: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, threads: Int) {
        let positions = g.positions, depth = g.depth
        for b in 0..<g.batch {
            let image = x + b * g.channels * g.height * g.width
            let out = y + b * g.outChannels * positions
            // Chunks of whole output rows, so each task's columns are one contiguous range.
            parallelChunks(g.outHeight, threads: threads, grain: max(1, 4096 / max(g.outWidth, 1))) { rows in
                let first = rows.lowerBound * g.outWidth, count = rows.count * g.outWidth
                unfold(image, g, rows: rows, columns: columns + first, rowStride: positions)
                if !LinearKernel.blasThreading {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(g.outChannels), Int32(count), Int32(depth),
                                1, weight, Int32(depth), columns + first, Int32(positions), 0, out + first, Int32(positions))
                }
            }
            if LinearKernel.blasThreading {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(g.outChannels), Int32(positions), Int32(depth),
                            1, weight, Int32(depth), columns, Int32(positions), 0, out, Int32(positions))
            }
            if let bias {
                for o in 0..<g.outChannels {
                    let plane = out + o * positions
                    let value = bias[o]
                    for p in 0..<positions { plane[p] += value }
                }
            }
        }
    }

    /// Columns of output rows `rows`: row (c, ky, kx) of the unfolded matrix holds, for each
    /// output position, the input pixel under that kernel tap (0 outside the image).
    private static func unfold(_ image: UnsafePointer<Float>, _ g: Geometry, rows: Range<Int>,
                               columns: UnsafeMutablePointer<Float>, rowStride: Int) {
        var row = 0
        for c in 0..<g.channels {
            let plane = image + c * g.height * g.width
            for ky in 0..<g.kernel {
                for kx in 0..<g.kernel {
                    var out = columns + row * rowStride
                    for oy in rows {
                        let iy = oy * g.stride - g.padding + ky
                        guard iy >= 0, iy < g.height else {
                            out.update(repeating: 0, count: g.outWidth)
                            out += g.outWidth
                            continue
                        }
                        let source = plane + iy * g.width
                        for ox in 0..<g.outWidth {
                            let ix = ox * g.stride - g.padding + kx
                            out[ox] = ix >= 0 && ix < g.width ? source[ix] : 0
                        }
                        out += g.outWidth
                    }
                    row += 1
                }
            }
        }
    }
}

/// The stem's per-element ops and the token-labelling head's reduction.
enum StemKernels {
    /// BatchNorm2d in eval mode, in PyTorch's CPU order: per channel `alpha = weight /
    /// sqrt(var + eps)`, `beta = bias - mean * alpha` (Float32), then `y = x * alpha + beta`.
    static func batchNorm(_ x: UnsafePointer<Float>, batch: Int, channels: Int, plane: Int,
                          weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                          variance: UnsafePointer<Float>, eps: Float, y: UnsafeMutablePointer<Float>, threads: Int) {
        parallelChunks(batch * channels, threads: threads, grain: max(1, 32_768 / max(plane, 1))) { range in
            for index in range {
                let c = index % channels
                let alpha = (1 / (variance[c] + eps).squareRoot()) * weight[c]
                let beta = bias[c] - mean[c] * alpha
                let (a, b) = (Float8(repeating: alpha), Float8(repeating: beta))
                let source = x + index * plane, out = y + index * plane
                var i = 0
                while i < plane {
                    let n = min(8, plane - i)
                    VectorMath.store(VectorMath.load(source + i, count: n) * a + b, out + i, count: n)
                    i += 8
                }
            }
        }
    }

    /// `max(x, 0)`, NaN passing through as in torch's relu.
    static func relu(_ x: UnsafePointer<Float>, count: Int, y: UnsafeMutablePointer<Float>, threads: Int) {
        parallelChunks(count, threads: threads, grain: 1 << 15) { range in
            for i in range { y[i] = x[i] < 0 ? 0 : x[i] }
        }
    }

    /// `x / divisor`, a true division (not a multiply by the reciprocal).
    static func divide(_ x: UnsafePointer<Float>, count: Int, divisor: Float, y: UnsafeMutablePointer<Float>, threads: Int) {
        let d = Float8(repeating: divisor)
        parallelChunks(count, threads: threads, grain: 1 << 15) { range in
            var i = range.lowerBound
            while i < range.upperBound {
                let n = min(8, range.upperBound - i)
                VectorMath.store(VectorMath.load(x + i, count: n) / d, y + i, count: n)
                i += 8
            }
        }
    }

    /// Per image and channel, the maximum over tokens `start..<tokens`; NaN wins, as in torch.
    static func maxTokens(_ x: UnsafePointer<Float>, batch: Int, tokens: Int, channels: Int, start: Int, y: UnsafeMutablePointer<Float>) {
        for b in 0..<batch {
            let out = y + b * channels
            let image = x + b * tokens * channels
            out.update(from: image + start * channels, count: channels)
            for n in (start + 1)..<max(start + 1, tokens) {
                let row = image + n * channels
                for c in 0..<channels where row[c] > out[c] || row[c].isNaN { out[c] = row[c] }
            }
        }
    }
}
