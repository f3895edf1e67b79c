import IR

/// The pointers an instruction's fusion brings in, resolved from its slots.
struct FusedPointers {
    var scale: UnsafePointer<Float>?
    var residual: UnsafePointer<Float>?
    var residualRows: PickedRows?
    var layerNorm: (input: UnsafePointer<Float>, prologue: LayerNormPrologue)?
    /// A fused gather's source and the rows the product reads from it.
    var gatheredInput: (source: UnsafePointer<Float>, rows: PickedRows)?

    init(_ fusion: Fusion, _ slots: UnsafeBufferPointer<UnsafeRawPointer>) {
        var next = 0
        func take() -> UnsafePointer<Float> {
            defer { next += 1 }
            return slots[next].assumingMemoryBound(to: Float.self)
        }
        func picked(_ gathered: GatheredRows) -> PickedRows {
            defer { next += 1 }
            return PickedRows(index: slots[next].assumingMemoryBound(to: Int32.self), perImage: gathered.selected,
                              imageRows: gathered.sourceTokens)
        }
        if fusion.scale != nil { scale = take() }
        if fusion.residual != nil { residual = take() }
        if let gathered = fusion.gatheredResidual {
            residual = take()
            residualRows = picked(gathered)
        }
        if let norm = fusion.layerNorm {
            let input = take(), weight = take(), bias = take()
            layerNorm = (input, LayerNormPrologue(weight: weight, bias: bias, eps: norm.eps))
        }
        if let gathered = fusion.gatheredInput {
            let source = take()
            gatheredInput = (source, picked(gathered))
        }
    }

    func epilogue(gelu: Bool) -> LinearEpilogue {
        LinearEpilogue(gelu: gelu, scale: scale, residual: residual, residualRows: residualRows)
    }
}

extension Interpreter {
    /// Dispatches one instruction to its kernel with the program's concrete extents.
    func execute(_ step: Step, _ instruction: Program.Instruction, inputs: UnsafeBufferPointer<UnsafeRawPointer>,
                 fused fusedSlots: UnsafeBufferPointer<UnsafeRawPointer>,
                 output: UnsafeMutableRawPointer, scratch: UnsafeMutableRawPointer) {
        let node = step.node
        let shapes = instruction.inputShapes
        let outShape = instruction.outputShape
        func f(_ i: Int) -> UnsafePointer<Float> { inputs[i].assumingMemoryBound(to: Float.self) }
        func optionalBias(_ start: Int) -> UnsafePointer<Float>? { linearBias(inputs, from: start) }
        func bias(_ start: Int) -> UnsafePointer<Float> { linearBias(inputs, from: start) ?? zeros }
        let y = output.assumingMemoryBound(to: Float.self)
        let fused = FusedPointers(instruction.fusion, fusedSlots)
        let epilogue = fused.epilogue(gelu: instruction.fusion.gelu)
        let floatScratch = scratch.assumingMemoryBound(to: Float.self)

        if let limit = instruction.rowLimit,
           executeRows(limit, step, instruction, f, inputs: inputs, fused: fused, epilogue: epilogue, y: y,
                       scratch: floatScratch) {
            return
        }

        switch node.op {
        case .patchEmbed(let embed):
            let image = shapes[0]
            PatchEmbedKernel.run(kernels: kernels, image: f(0), batch: image[0], channels: image[1], height: image[2],
                                 width: image[3], patch: embed.patch, weight: f(1), packed: step.packed, bias: f(2),
                                 outChannels: shapes[1][0],
                                 columns: scratch.assumingMemoryBound(to: Float.self), y: y, threads: threads)

        case .concatTokens:
            let patches = shapes.last!
            TokenKernels.concat(prefix: (0..<inputs.count - 1).map(f), patches: f(inputs.count - 1), batch: patches[0],
                                patchCount: patches[1], channels: patches[2], y: y)

        case .add:
            let count = outShape.elementCount
            let period = shapes[1].elementCount
            ElementwiseKernel.add(f(0), f(1), count: count, broadcastPeriod: period, y: y, threads: threads)

        case .layerNorm(let norm):
            let channels = outShape.last!
            LayerNormKernel.run(kernels: kernels, x: f(0), rows: outShape.elementCount / channels, channels: channels,
                                weight: f(1), bias: f(2), eps: Float(norm.eps), y: y, threads: threads)

        case .linear(let linear):
            let inFeatures = shapes[0].last!
            let rows = shapes[0].elementCount / inFeatures
            let start = linear.rows?.lowerBound ?? 0
            if let packed = step.packed {
                // The LayerNorm's input when the LayerNorm is fused into the product, or the
                // source of a gather fused into it.
                let x = fused.layerNorm?.input ?? fused.gatheredInput?.source ?? f(0)
                if let queries = instruction.queryRowLimit,
                   executeQueryRows(queries, packed: packed, shape: shapes[0], x: x, bias: optionalBias(start),
                                    layerNorm: fused.layerNorm?.prologue, y: y, scratch: floatScratch) {
                    break
                }
                LinearKernel.run(kernels: kernels, x: x, rows: rows, xRows: fused.gatheredInput?.rows, weight: packed,
                                 bias: optionalBias(start), epilogue: epilogue, layerNorm: fused.layerNorm?.prologue, y: y,
                                 threads: threads, workspace: floatScratch)
            } else {
                BLASLinearKernel.run(x: f(0), rows: rows, inFeatures: inFeatures, weight: f(1) + start * inFeatures,
                                     bias: bias(start), outFeatures: outShape.last!, epilogue: epilogue, y: y, threads: threads)
            }

        case .gelu:
            GELUKernel.run(kernels: kernels, x: f(0), count: outShape.elementCount, y: y, threads: threads)

        case .attention(let attention):
            let channels = outShape[2]
            let fusedQKV = inputs.count == 1
            let (q, k, v) = (f(0), fusedQKV ? f(0) + channels : f(1), fusedQKV ? f(0) + 2 * channels : f(2))
            let rowStride = fusedQKV ? 3 * channels : channels
            let queries = instruction.rowLimit ?? outShape[1]
            if options.matrixBackend == .packed {
                AttentionKernel.run(kernels: kernels, q: q, k: k, v: v, rowStride: rowStride, batch: outShape[0], tokens: outShape[1],
                                    channels: channels, heads: attention.heads, scratch: floatScratch, y: y, threads: threads,
                                    queries: queries)
            } else {
                BLASAttentionKernel.run(q: q, k: k, v: v, rowStride: rowStride, batch: outShape[0], tokens: outShape[1],
                                        channels: channels, heads: attention.heads, scratch: floatScratch, y: y, threads: threads,
                                        queries: queries)
            }

        case .tokenSelect(let selection):
            let x = shapes[0]
            TokenSelectKernel.run(kernels: kernels, x: f(0), batch: x[0], tokens: x[1], channels: x[2], weight: f(1), bias: bias(0),
                                  heads: selection.heads, keep: selection.keep,
                                  prefix: selection.prefix, scratch: scratch.assumingMemoryBound(to: Double.self),
                                  y: output.assumingMemoryBound(to: Int32.self), threads: threads)

        case .gatherTokens:
            let x = shapes[0]
            TokenKernels.gather(f(0), batch: x[0], tokens: x[1], channels: x[2],
                                index: inputs[1].assumingMemoryBound(to: Int32.self), selected: shapes[1][1], y: y)

        case .scatterTokens:
            let x = shapes[0]
            TokenKernels.scatter(f(0), batch: x[0], tokens: x[1], channels: x[2],
                                 index: inputs[1].assumingMemoryBound(to: Int32.self), selected: shapes[1][1], rows: f(2), y: y)

        case .takeToken(let take):
            let x = shapes[0]
            TokenKernels.take(f(0), batch: x[0], tokens: x[1], channels: x[2], index: take.index, y: y)

        case .scale:
            let channels = outShape.last!
            ElementwiseKernel.scale(f(0), gamma: f(1), rows: outShape.elementCount / channels, channels: channels, y: y)

        case .mean:
            ElementwiseKernel.mean((0..<inputs.count).map(f), count: outShape.elementCount, y: y)

        case .conv2d, .batchNorm, .relu, .divide, .maxTokens:
            executeConvolutionalOps(step, instruction, inputs: inputs, output: y, scratch: scratch)
        }
    }

    /// A linear's or token_select's bias from element `start`: nil when absent (two inputs), as
    /// the packed kernels take it; the OpenBLAS ones read `zeros` in its place.
    private func linearBias(_ inputs: UnsafeBufferPointer<UnsafeRawPointer>, from start: Int) -> UnsafePointer<Float>? {
        inputs.count > 2 ? inputs[2].assumingMemoryBound(to: Float.self) + start : nil
    }

    /// A fused qkv product (C -> 3C, no epilogue) whose attention computes the first `queries`
    /// queries of each image (`RowDemand.queryRows`): keys and values for every row, queries
    /// for those rows only. false (nothing done) when C is not a whole number of panels.
    private func executeQueryRows(_ queries: Int, packed: PackedMatrix, shape: [Int], x: UnsafePointer<Float>,
                                  bias: UnsafePointer<Float>?, layerNorm: LayerNormPrologue?, y: UnsafeMutablePointer<Float>,
                                  scratch: UnsafeMutablePointer<Float>) -> Bool {
        let channels = packed.outFeatures / 3
        guard shape.count == 3, packed.outFeatures == 3 * channels, queries < shape[1],
              let query = packed.features(0..<channels), let keyValue = packed.features(channels..<3 * channels) else { return false }
        let (batch, tokens) = (shape[0], shape[1])
        LinearKernel.run(kernels: kernels, x: x, rows: batch * tokens, weight: keyValue, bias: bias.map { $0 + channels },
                         layerNorm: layerNorm, y: y + channels, yStride: 3 * channels, threads: threads, workspace: scratch)
        LinearKernel.runFirstRows(queries, kernels: kernels, x: x, batch: batch, tokens: tokens, weight: query, bias: bias,
                                  layerNorm: layerNorm, y: y, yRowFloats: 3 * channels, threads: threads, workspace: scratch)
        return true
    }

    /// The row-wise ops computing only the first `limit` rows of every image (`RowDemand`);
    /// false for the others, which then compute every row (attention takes the limit as its
    /// number of queries in `execute`).
    private func executeRows(_ limit: Int, _ step: Step, _ instruction: Program.Instruction, _ f: (Int) -> UnsafePointer<Float>,
                             inputs: UnsafeBufferPointer<UnsafeRawPointer>,
                             fused: FusedPointers, epilogue: LinearEpilogue, y: UnsafeMutablePointer<Float>,
                             scratch: UnsafeMutablePointer<Float>) -> Bool {
        let shape = instruction.outputShape
        let (batch, tokens, channels) = (shape[0], shape[1], shape[2])
        switch step.node.op {
        case .linear(let linear):
            let inFeatures = instruction.inputShapes[0][2]
            let start = linear.rows?.lowerBound ?? 0
            if let packed = step.packed {
                LinearKernel.runFirstRows(limit, kernels: kernels, x: fused.layerNorm?.input ?? f(0), batch: batch, tokens: tokens,
                                          weight: packed, bias: linearBias(inputs, from: start), epilogue: epilogue,
                                          layerNorm: fused.layerNorm?.prologue, y: y, yRowFloats: channels, threads: threads,
                                          workspace: scratch)
            } else {
                // One call per demanded token row, over the images (row stride N x features).
                for r in 0..<limit {
                    BLASLinearKernel.run(x: f(0) + r * inFeatures, rows: batch, inFeatures: inFeatures, weight: f(1) + start * inFeatures,
                                         bias: linearBias(inputs, from: start) ?? zeros, outFeatures: channels,
                                         epilogue: epilogue.advanced(by: r * channels),
                                         y: y + r * channels, threads: 1, xStride: tokens * inFeatures, yStride: tokens * channels)
                }
            }
        case .layerNorm(let norm):
            let eps = Float(norm.eps)
            for b in 0..<batch {
                let offset = b * tokens * channels
                kernels.table.pointee.layer_norm(f(0) + offset, limit, channels, channels, f(1), f(2), eps, y + offset)
            }
        case .scale:
            for b in 0..<batch {
                let offset = b * tokens * channels
                ElementwiseKernel.scale(f(0) + offset, gamma: f(1), rows: limit, channels: channels, y: y + offset)
            }
        case .gelu:
            for b in 0..<batch {
                let offset = b * tokens * channels
                kernels.table.pointee.gelu(f(0) + offset, y + offset, limit * channels)
            }
        case .add:
            let broadcast = instruction.inputShapes[1].elementCount != shape.elementCount
            for b in 0..<batch {
                let offset = b * tokens * channels
                ElementwiseKernel.addRange(f(0) + offset, f(1) + (broadcast ? 0 : offset), count: limit * channels, y: y + offset)
            }
        case .gatherTokens:
            let x = instruction.inputShapes[0]
            TokenKernels.gather(f(0), batch: batch, tokens: x[1], channels: channels,
                                index: inputs[1].assumingMemoryBound(to: Int32.self), selected: tokens, rows: limit, y: y)
        case .scatterTokens:
            // Demanded rows are prefix tokens, selected at the same positions: rows[b, p] -> y[b, p].
            let selected = instruction.inputShapes[1][1]
            for b in 0..<batch {
                for p in 0..<limit {
                    (y + (b * tokens + p) * channels).update(from: f(2) + (b * selected + p) * channels, count: channels)
                }
            }
        default:
            return false
        }
        return true
    }
}
