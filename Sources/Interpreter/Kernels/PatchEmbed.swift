import CBLAS
import CKernels

/// Conv2d with kernel = stride = P as a matrix product: each image is unfolded into
/// `[Np, channels * P * P]` patch rows (im2col, in the weight's (c, ky, kx) order), then one
/// GEMM against the `[C, channels*P*P]` weight. Patch n = row * (W/P) + col, as timm flattens.
enum PatchEmbedKernel {
    static func scratchFloats(channels: Int, height: Int, width: Int, patch: Int) -> Int {
        (height / patch) * (width / patch) * channels * patch * patch
    }

    /// `packed`: the weight packed for the CKernels GEMM, nil for the OpenBLAS engine.
    static func run(kernels: CPUKernels, image: UnsafePointer<Float>, batch: Int, channels: Int, height: Int, width: Int, patch: Int,
                    weight: UnsafePointer<Float>, packed: PackedMatrix?, bias: UnsafePointer<Float>, outChannels: Int,
                    columns: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, threads: Int) {
        let perRow = width / patch
        let patches = (height / patch) * perRow
        let k = channels * patch * patch
        for b in 0..<batch {
            let source = image + b * channels * height * width
            parallelChunks(patches, threads: threads, grain: 32) { range in
                idv_unfold_windows(source, channels, height, width, patch, patch, 0, perRow, range.lowerBound, range.upperBound,
                                   columns)
            }
            if let packed {
                LinearKernel.run(kernels: kernels, x: columns, rows: patches, weight: packed, bias: bias,
                                 y: y + b * patches * outChannels, threads: threads)
            } else {
                BLASLinearKernel.run(x: columns, rows: patches, inFeatures: k, weight: weight, bias: bias, outFeatures: outChannels,
                                     y: y + b * patches * outChannels, threads: threads)
            }
        }
    }
}
