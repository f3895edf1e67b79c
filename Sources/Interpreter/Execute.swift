import IR

extension Interpreter {
    /// Dispatches one instruction to its kernel with the program's concrete extents.
    func execute(_ step: Step, _ instruction: Program.Instruction, inputs: UnsafeBufferPointer<UnsafeRawPointer>,
                 residual: UnsafePointer<Float>?,
                 output: UnsafeMutableRawPointer, scratch: UnsafeMutableRawPointer) {
        let node = step.node
        let shapes = instruction.inputShapes
        let outShape = instruction.outputShape
        func f(_ i: Int) -> UnsafePointer<Float> { inputs[i].assumingMemoryBound(to: Float.self) }
        // An absent bias (a linear or token_select with two inputs) reads zeros.
        func bias(_ start: Int) -> UnsafePointer<Float> { inputs.count > 2 ? f(2) + start : zeros }
        let y = output.assumingMemoryBound(to: Float.self)
        let epilogue: LinearEpilogue
        switch instruction.fusion {
        case .none: epilogue = .bias
        case .gelu: epilogue = .gelu
        case .residual: epilogue = .residual(residual!)
        }

        if let limit = instruction.rowLimit,
           executeRows(limit, node, instruction, f, bias, inputs: inputs, epilogue: epilogue, y: y) {
            return
        }

        switch node.op {
        case .patchEmbed(let embed):
            let image = shapes[0]
            PatchEmbedKernel.run(image: f(0), batch: image[0], channels: image[1], height: image[2], width: image[3],
                                 patch: embed.patch, weight: f(1), bias: f(2), outChannels: shapes[1][0],
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
            LayerNormKernel.run(x: f(0), rows: outShape.elementCount / channels, channels: channels, weight: f(1), bias: f(2),
                                eps: Float(norm.eps), y: y, threads: threads)

        case .linear(let linear):
            let inFeatures = shapes[0].last!
            let rows = shapes[0].elementCount / inFeatures
            let start = linear.rows?.lowerBound ?? 0
            LinearKernel.run(x: f(0), rows: rows, inFeatures: inFeatures, weight: f(1) + start * inFeatures, bias: bias(start),
                             outFeatures: outShape.last!, epilogue: epilogue, y: y, threads: threads)

        case .gelu:
            GELUKernel.run(x: f(0), count: outShape.elementCount, y: y, threads: threads)

        case .attention(let attention):
            let channels = outShape[2]
            let packed = inputs.count == 1
            AttentionKernel.run(q: f(0), k: packed ? f(0) + channels : f(1), v: packed ? f(0) + 2 * channels : f(2),
                                rowStride: packed ? 3 * channels : channels, batch: outShape[0], tokens: outShape[1],
                                channels: channels, heads: attention.heads,
                                scratch: scratch.assumingMemoryBound(to: Float.self), y: y, threads: threads,
                                queries: instruction.rowLimit ?? outShape[1])

        case .tokenSelect(let selection):
            let x = shapes[0]
            TokenSelectKernel.run(x: f(0), batch: x[0], tokens: x[1], channels: x[2], weight: f(1), bias: bias(0),
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
        }
    }

    /// The row-wise ops computing only the first `limit` rows of every image (`RowDemand`);
    /// false for the others, which then compute every row (attention takes the limit as its
    /// number of queries in `execute`).
    private func executeRows(_ limit: Int, _ node: Node, _ instruction: Program.Instruction, _ f: (Int) -> UnsafePointer<Float>,
                             _ bias: (Int) -> UnsafePointer<Float>,
                             inputs: UnsafeBufferPointer<UnsafeRawPointer>, epilogue: LinearEpilogue, y: UnsafeMutablePointer<Float>) -> Bool {
        let shape = instruction.outputShape
        let (batch, tokens, channels) = (shape[0], shape[1], shape[2])
        switch node.op {
        case .linear(let linear):
            let inFeatures = instruction.inputShapes[0][2]
            let start = linear.rows?.lowerBound ?? 0
            // One call per demanded token row, over the images (row stride N x features).
            for r in 0..<limit {
                LinearKernel.run(x: f(0) + r * inFeatures, rows: batch, inFeatures: inFeatures, weight: f(1) + start * inFeatures,
                                 bias: bias(start), outFeatures: channels, epilogue: epilogue.advanced(by: r * channels),
                                 y: y + r * channels,
                                 threads: 1, xStride: tokens * inFeatures, yStride: tokens * channels)
            }
        case .layerNorm(let norm):
            let eps = Float(norm.eps)
            for b in 0..<batch {
                for r in 0..<limit {
                    let offset = (b * tokens + r) * channels
                    LayerNormKernel.row(f(0) + offset, channels: channels, weight: f(1), bias: f(2), eps: eps, y: y + offset)
                }
            }
        case .scale:
            for b in 0..<batch {
                let offset = b * tokens * channels
                ElementwiseKernel.scale(f(0) + offset, gamma: f(1), rows: limit, channels: channels, y: y + offset)
            }
        case .gelu:
            for b in 0..<batch {
                let offset = b * tokens * channels
                GELUKernel.apply(f(0) + offset, count: limit * channels, y: y + offset)
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
