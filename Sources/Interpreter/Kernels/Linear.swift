import CKernels

/// What a linear layer does around its matrix product, fused at plan time when the plain
/// product is not needed by anything else (see `Program`):
/// `y = residual + scale * act(x W^T + b)`.
struct LinearEpilogue {
    /// GELU of the biased product (fc1 and the MLP's activation).
    var gelu = false
    /// Per-output-channel factor (LayerScale's gamma), applied after the activation.
    var scale: UnsafePointer<Float>?
    /// Added last (attn.proj / mlp.fc2 and the residual stream); laid out like `y`, and may be `y`.
    var residual: UnsafePointer<Float>?
    /// The residual's rows picked from a larger matrix (`residual` is then its start, never `y`):
    /// `add(gather_tokens(x, selected), proj(...))` with the gather fused away.
    var residualRows: PickedRows?

    /// The same epilogue for output rows starting `offset` elements further on.
    func advanced(by offset: Int) -> LinearEpilogue {
        precondition(residualRows == nil, "picked residual rows do not move by an offset")
        var moved = self
        moved.residual = residual.map { $0 + offset }
        return moved
    }
}

/// Rows picked image by image, as `gather_tokens` picks them: row m of the operand is token
/// `index[m]` of image `m / perImage`, images `imageRows` rows apart. The index must be
/// `token_select`'s output (every entry a valid token), the only one `Program` fuses.
struct PickedRows {
    var index: UnsafePointer<Int32>
    var perImage: Int
    var imageRows: Int

    var c: IdvRowIndex { IdvRowIndex(index: index, per_image: perImage, image_rows: imageRows) }
}

/// LayerNorm of the product's input rows, applied as the GEMM reads them (`Program` fuses a
/// LayerNorm into the linear layer that is its only reader).
struct LayerNormPrologue {
    var weight: UnsafePointer<Float>
    var bias: UnsafePointer<Float>
    var eps: Float
}

/// `y[m, o] = epilogue(x[m, :] . W[o, :] + b[o])` over weights packed once (`PackedWeights`),
/// by the CKernels GEMM of the interpreter's instruction set.
///
/// The output is cut into (rows x panels) rectangles, two per thread, claimed by the threads as
/// they go: a thread the OS keeps waiting hands its share to the other. One image's ~200 rows
/// (or the 68-177 gathered rows of an idle block) are split by output columns, so that each
/// thread reads a different part of W and all of the small x; a batch is split by rows, so that
/// each thread reads its own rows and all of W. Every output element is summed in the same
/// order whatever the split, so results do not depend on the thread count.
enum LinearKernel {
    /// Below this many multiply-adds a product runs on one thread: waking a worker costs more.
    static let parallelThreshold = 1 << 20
    /// A product on fewer rows than this counts as this many against `parallelThreshold`: each
    /// weight is used for a row or two, so the time goes to reading the weights from memory,
    /// which two threads do faster than one. DeiT-S's last block at batch 1 (class row only:
    /// proj, fc1, fc2, head; 0.15-0.6 M multiply-adds each) ran on one thread: 0.37 -> 0.24 ms
    /// a run on two (`IDLEVIT_PROFILE`, Zen 2).
    static let weightBoundRows = 8
    /// Up to this many rows, split the columns; beyond, the rows.
    static let columnSplitRows = 256

    struct Partition: Equatable {
        /// Rows per task (a multiple of the tile height) and how many row ranges.
        var rowChunk: Int
        var rowParts: Int
        /// Weight panels per task and how many panel ranges.
        var panelChunk: Int
        var panelParts: Int

        var tasks: Int { rowParts * panelParts }
    }

    static func partition(rows: Int, panels: Int, inFeatures: Int, mr: Int, nr: Int, threads: Int) -> Partition {
        let work = max(rows, weightBoundRows) * panels * nr * inFeatures
        let wanted = threads > 1 && work >= parallelThreshold ? 2 * threads : 1
        var rowParts = 1
        var panelParts = 1
        if rows <= columnSplitRows {
            panelParts = min(panels, wanted)
        } else {
            rowParts = min((rows + mr - 1) / mr, wanted)
        }
        let tiles = (rows + mr - 1) / mr
        let rowChunk = (tiles + rowParts - 1) / rowParts * mr
        let panelChunk = (panels + panelParts - 1) / panelParts
        return Partition(rowChunk: rowChunk, rowParts: (rows + rowChunk - 1) / rowChunk,
                         panelChunk: panelChunk, panelParts: (panels + panelChunk - 1) / panelChunk)
    }

    /// Floats of workspace `run` needs for a product with a LayerNorm prologue (none without).
    static func workspaceFloats(kernels: CPUKernels, rows: Int, inFeatures: Int, outFeatures: Int, threads: Int) -> Int {
        let plan = partition(rows: rows, panels: (outFeatures + kernels.nr - 1) / kernels.nr, inFeatures: inFeatures,
                             mr: kernels.mr, nr: kernels.nr, threads: threads)
        if plan.panelParts > 1 { return rows * inFeatures }
        return slotFloats(kernels: kernels, rows: plan.rowChunk, inFeatures: inFeatures) * min(threads, plan.tasks)
    }

    private static func slotFloats(kernels: CPUKernels, rows: Int, inFeatures: Int) -> Int {
        (kernels.table.pointee.gemm_workspace_floats(rows, inFeatures) + 15) / 16 * 16
    }

    /// `xStride` / `yStride`: elements from one row of x / of y and the residual to the next
    /// (default: packed rows), so a product can run on one token row of every image.
    /// `xRows`: x's rows picked from the matrix at `x` (a gather fused into the product);
    /// not with a LayerNorm prologue.
    /// `workspace`: `workspaceFloats` floats when `layerNorm` is given.
    ///
    /// The LayerNorm prologue pays where each row is normalised once: when the rows are split
    /// between threads, each normalises its own rows into its workspace as the GEMM goes and
    /// the normalised rows are never written out. When the columns are split (few rows), every
    /// task would normalise all rows again, so the rows are normalised once, in parallel, into
    /// the workspace first.
    static func run(kernels: CPUKernels, x: UnsafePointer<Float>, rows: Int, xStride: Int? = nil, xRows: PickedRows? = nil,
                    weight: PackedMatrix,
                    bias: UnsafePointer<Float>?, epilogue: LinearEpilogue = LinearEpilogue(), layerNorm: LayerNormPrologue? = nil,
                    y: UnsafeMutablePointer<Float>, yStride: Int? = nil, threads: Int,
                    workspace: UnsafeMutablePointer<Float>? = nil) {
        guard rows > 0, weight.outFeatures > 0 else { return }
        precondition(layerNorm == nil || workspace != nil, "a LayerNorm prologue needs a workspace")
        precondition(layerNorm == nil || xRows == nil, "picked rows do not take a LayerNorm prologue")
        let k = weight.inFeatures
        let plan = partition(rows: rows, panels: weight.panelCount, inFeatures: k, mr: kernels.mr, nr: kernels.nr,
                             threads: threads)
        var a = x
        var lda = xStride ?? k
        var fusedNorm = layerNorm
        if let norm = layerNorm, let workspace, plan.panelParts > 1 {
            LayerNormKernel.run(kernels: kernels, x: x, xStride: lda, rows: rows, channels: k, weight: norm.weight, bias: norm.bias,
                                eps: norm.eps, y: workspace, threads: threads)
            (a, lda, fusedNorm) = (UnsafePointer(workspace), k, nil)
        }
        let yStride = yStride ?? weight.outFeatures
        let gemm = IdvGemm(a: a, lda: lda, b: weight.panels, k: k, n: weight.outFeatures, c: y, ldc: yStride,
                           bias: bias, scale: epilogue.scale, residual: epilogue.residual, ldr: yStride,
                           gelu: epilogue.gelu ? 1 : 0, ln_weight: fusedNorm?.weight, ln_bias: fusedNorm?.bias,
                           ln_eps: fusedNorm?.eps ?? 0, a_rows: xRows?.c ?? IdvRowIndex(),
                           residual_rows: epilogue.residualRows?.c ?? IdvRowIndex())
        let slot = fusedNorm == nil ? 0 : slotFloats(kernels: kernels, rows: plan.rowChunk, inFeatures: k)
        let table = kernels.table
        withUnsafePointer(to: gemm) { gemm in
            parallelTasks(plan.tasks, threads: min(threads, plan.tasks)) { task, worker in
                let firstRow = (task / plan.panelParts) * plan.rowChunk
                let firstPanel = (task % plan.panelParts) * plan.panelChunk
                table.pointee.gemm(gemm, firstRow, min(rows, firstRow + plan.rowChunk), firstPanel,
                                   min(weight.panelCount, firstPanel + plan.panelChunk), workspace.map { $0 + worker * slot })
            }
        }
    }

    /// The first `tokenRows` token rows of every image of x ([batch, tokens, K]) into the same
    /// rows of y (`yRowFloats` floats per token row; the epilogue's residual laid out alike),
    /// for row demand: a call per token row, over the images, whose rows are `tokens` apart.
    static func runFirstRows(_ tokenRows: Int, kernels: CPUKernels, x: UnsafePointer<Float>, batch: Int, tokens: Int,
                             weight: PackedMatrix, bias: UnsafePointer<Float>?, epilogue: LinearEpilogue = LinearEpilogue(),
                             layerNorm: LayerNormPrologue?, y: UnsafeMutablePointer<Float>, yRowFloats: Int, threads: Int,
                             workspace: UnsafeMutablePointer<Float>) {
        let k = weight.inFeatures
        for r in 0..<tokenRows {
            run(kernels: kernels, x: x + r * k, rows: batch, xStride: tokens * k, weight: weight, bias: bias,
                epilogue: epilogue.advanced(by: r * yRowFloats), layerNorm: layerNorm, y: y + r * yRowFloats,
                yStride: tokens * yRowFloats, threads: threads, workspace: workspace)
        }
    }
}
