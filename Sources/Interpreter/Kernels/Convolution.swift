import CKernels

/// `conv2d` as a matrix product, one image at a time, through the engine's linear kernels: the
/// image is unfolded into `[H'*W', Ci*K*K]` rows (im2col, each output position's window in
/// the weight's (c, ky, kx) order, zeros where it hangs over the padding), multiplied by the
/// `[O, Ci*K*K]` weight as a linear layer (packed once like every weight, or OpenBLAS), which
/// gives channels last, then transposed to NCHW. The bias (a BatchNorm an exporter folded
/// into the convolution) is the linear layer's.
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

    /// The unfolded rows, then the channels-last product.
    static func scratchFloats(_ g: Geometry) -> Int { g.positions * (g.depth + g.outChannels) }

    static func run(kernels: CPUKernels, x: UnsafePointer<Float>, weight: UnsafePointer<Float>, packed: PackedMatrix?,
                    bias: UnsafePointer<Float>?, zeros: UnsafePointer<Float>, _ g: Geometry,
                    scratch: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, threads: Int) {
        let positions = g.positions, depth = g.depth
        let columns = scratch, product = scratch + positions * depth
        for b in 0..<g.batch {
            let image = x + b * g.channels * g.height * g.width
            parallelChunks(g.outHeight, threads: threads, grain: max(1, 1024 / max(g.outWidth, 1))) { rows in
                idv_unfold_windows(image, g.channels, g.height, g.width, g.kernel, g.stride, g.padding, g.outWidth,
                                   rows.lowerBound * g.outWidth, rows.upperBound * g.outWidth, columns)
            }
            if let packed {
                LinearKernel.run(kernels: kernels, x: columns, rows: positions, weight: packed, bias: bias, y: product, threads: threads)
            } else {
                BLASLinearKernel.run(x: columns, rows: positions, inFeatures: depth, weight: weight, bias: bias ?? zeros,
                                     outFeatures: g.outChannels, y: product, threads: threads)
            }
            transpose(product, rows: positions, columns: g.outChannels, into: y + b * g.outChannels * positions, threads: threads)
        }
    }

    /// `[rows, columns]` -> `[columns, rows]` in 32 x 32 tiles, so both sides stay in cache.
    private static func transpose(_ source: UnsafePointer<Float>, rows: Int, columns: Int, into out: UnsafeMutablePointer<Float>, threads: Int) {
        let tile = 32
        let rowTiles = (rows + tile - 1) / tile
        parallelChunks(rowTiles, threads: threads, grain: 8) { range in
            for rowTile in range {
                let r0 = rowTile * tile, r1 = min(rows, r0 + tile)
                var c0 = 0
                while c0 < columns {
                    let c1 = min(columns, c0 + tile)
                    for c in c0..<c1 {
                        let line = out + c * rows
                        for r in r0..<r1 { line[r] = source[r * columns + c] }
                    }
                    c0 = c1
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
