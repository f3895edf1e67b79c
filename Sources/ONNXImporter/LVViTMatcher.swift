import IR
import ModelDescription

/// LV-ViT in an ONNX graph, by dataflow as the rest of `DeiTMatcher` (the blocks are the ViT
/// family's, matched there):
///
///     Conv 7x7/2 [-> BatchNormalization] -> Relu -> Conv 3x3 [-> BN] -> Relu -> Conv 3x3 [-> BN]
///       -> Relu -> Conv (kernel = stride = P/2) -> patches
///     each residual branch -> Div skip_lam -> Add
///     final LN -> Gather 0 -> head;  Slice 1... -> aux_head -> ReduceMax over tokens (or aux_head
///       on every token first, then the Slice: idlevit's own export) -> Mul 0.5 or Div 2 -> Add
///
/// `torch.onnx.export` in eval mode folds each BatchNorm into the Conv before it: the Conv
/// then has a bias, which becomes `patch_embed.conv{k}.bias`, and the model's
/// `stemBatchNorm` is false. A graph that kept BatchNormalization nodes (idlevit's own
/// export) gives the checkpoint's BatchNorm tensors back.
extension DeiTMatcher {
    /// The image feeds a 7x7 stride-2 convolution: LV-ViT's stem, not a patch embedding.
    func startsWithConvolutionalStem() -> Bool {
        let readers = consumers(analysis.inputName)
        guard readers.count == 1, let conv = readers.first, conv.opType == "Conv" else { return false }
        let w = shape(input(conv, 1))
        return w.count == 4 && w[2] == 7 && w[3] == 7 && conv.ints("strides") == [2, 2]
    }

    mutating func matchConvolutionalStem() throws(MatchFailure) -> (String, Int) {
        var x = analysis.inputName
        var channels = analysis.inputShape[1]
        var width = 0
        var folded: Bool?
        for (index, stage) in LVViTStem.stages.enumerated() {
            let k = index + 1
            let conv = try onlyConsumer(x, ["Conv"], expecting: "stem convolution \(k)")
            let w = shape(input(conv, 1))
            guard w.count == 4, w[1] == channels, w[2] == stage.kernel, w[3] == stage.kernel, w[0] > 0, index == 0 || w[0] == width,
                  conv.ints("strides") == [stage.stride, stage.stride], (conv.ints("kernel_shape") ?? [stage.kernel, stage.kernel]) == [stage.kernel, stage.kernel],
                  (conv.ints("pads") ?? [0, 0, 0, 0]) == Array(repeating: stage.padding, count: 4), (conv.ints("dilations") ?? [1, 1]) == [1, 1],
                  (conv.int("group") ?? 1) == 1, ["NOTSET"].contains(conv.string("auto_pad") ?? "NOTSET") else {
                throw fail(conv, "stem convolution \(k) must be \(stage.kernel)x\(stage.kernel), stride \(stage.stride), padding \(stage.padding) over \(channels) channels (weight \(w))")
            }
            width = w[0]
            emit(stage.convWeight, try weight(input(conv, 1), shape: w, at: conv, role: "stem convolution \(k) weight"))
            visit(conv)
            x = output(conv)
            let hasBias = !input(conv, 2).isEmpty
            let readers = consumers(x)
            let normalised = readers.count == 1 && readers[0].opType == "BatchNormalization"
            guard hasBias != normalised, folded == nil || folded == hasBias else {
                throw fail(conv, "each stem convolution needs either a bias (BatchNorm folded) or a BatchNormalization after it, all alike")
            }
            folded = hasBias
            if hasBias {
                emit(stage.convBias, try weight(input(conv, 2), shape: [width], at: conv, role: "stem convolution \(k) bias"))
            } else {
                x = try matchStemBatchNorm(readers[0], input: x, stage: stage, number: k, width: width)
            }
            let relu = try onlyConsumer(x, ["Relu"], expecting: "the stem's ReLU")
            visit(relu)
            x = output(relu)
            channels = width
        }
        let proj = try onlyConsumer(x, ["Conv"], expecting: "the patch projection")
        let w = shape(input(proj, 1))
        let grid = shape(x)
        guard w.count == 4, w[1] == width, w[2] == w[3], w[2] > 0, grid.count == 4, grid[2] % w[2] == 0, grid[3] % w[2] == 0,
              proj.ints("strides") == [w[2], w[2]], (proj.ints("kernel_shape") ?? [w[2], w[2]]) == [w[2], w[2]],
              (proj.ints("pads") ?? [0, 0, 0, 0]).allSatisfy({ $0 == 0 }), (proj.ints("dilations") ?? [1, 1]) == [1, 1],
              (proj.int("group") ?? 1) == 1, !input(proj, 2).isEmpty else {
            throw fail(proj, "the patch projection must be a Conv with kernel = stride, no padding, and a bias, over the stem's \(width) channels")
        }
        let dim = w[0]
        emit(.patchWeight, try weight(input(proj, 1), shape: w, at: proj, role: "patch projection weight"))
        emit(.patchBias, try weight(input(proj, 2), shape: [dim], at: proj, role: "patch projection bias"))
        visit(proj)
        return (try flattenPatchGrid(proj, dim: dim, count: (grid[2] / w[2]) * (grid[3] / w[2])), dim)
    }

    /// BatchNormalization in inference mode with LV-ViT's epsilon (torch's 1e-5).
    private mutating func matchStemBatchNorm(_ bn: ONNXNode, input x: String, stage: LVViTStem.Stage, number k: Int,
                                             width: Int) throws(MatchFailure) -> String {
        let eps = Double(bn.float("epsilon") ?? 1e-5)
        guard input(bn, 0) == x, analysis.inputs(of: bn).count == 5, (bn.int("training_mode") ?? 0) == 0,
              bn.outputs.dropFirst().allSatisfy({ $0.isEmpty || consumers($0).isEmpty }),
              Self.close(eps, 1e-5, tolerance: 1e-3) else {
            throw fail(bn, "stem BatchNorm \(k) must be BatchNormalization in inference mode with epsilon 1e-5 (has \(eps))")
        }
        let names = ["weight", "bias", "running_mean", "running_var"]
        for (i, role) in stage.norms.enumerated() {
            emit(role, try weight(input(bn, i + 1), shape: [width], at: bn, role: "stem BatchNorm \(k) \(names[i])"))
        }
        visit(bn)
        return output(bn)
    }

    /// `x / d` by a scalar constant (LV-ViT's skip_lam), when that is x's only consumer;
    /// otherwise x itself.
    mutating func matchBranchDivisor(_ x: String) throws(MatchFailure) -> String {
        let readers = consumers(x)
        guard readers.count == 1, let div = readers.first, div.opType == "Div", input(div, 0) == x,
              let divisor = scalarOperand(input(div, 1)) else { return x }
        guard divisor.isFinite, abs(divisor) >= 1e-6 else { throw fail(div, "a residual branch divided by \(divisor)") }
        branchDivisors.append(divisor)
        visit(div)
        return output(div)
    }

    /// Both branches of every block divided by one skip_lam, or none.
    func commonBranchDivisor(blocks: Int) throws(MatchFailure) -> Double? {
        guard let first = branchDivisors.first else { return nil }
        guard branchDivisors.count == 2 * blocks, branchDivisors.allSatisfy({ $0 == first }) else {
            throw fail(nil, "residual branches are divided by \(Set(branchDivisors).sorted()) in \(branchDivisors.count) of \(2 * blocks) places; LV-ViT divides every branch by one skip_lam")
        }
        // ONNX stores it as Float32: 2 and 3 are exact; anything else reads as written in the source.
        return ONNXImporter.shortestDecimal(first)
    }

    /// `head(x[:, 0]) + 0.5 * max over tokens 1... of aux_head(x)`, or a plain head (an
    /// LV-ViT without `return_dense`).
    mutating func matchTokenLabellingHead(_ normed: String, dim: Int) throws(MatchFailure) -> String {
        let readers = consumers(normed)
        if readers.count == 1 { return try matchHeads(normed, dim: dim, distilled: false) }
        guard readers.count == 2 else {
            throw fail(analysis.producer(of: normed), "expected the head and the auxiliary head to read the final norm, found \(readers.count) readers")
        }
        let tokens = shape(normed).count == 3 ? shape(normed)[1] : 0
        // The class token (Gather 0, or a one-token Slice): the head. The other reader: the
        // auxiliary head's Slice over the patch tokens, or its linear on every token.
        var classToken: String?
        var auxReader: ONNXNode?
        for reader in readers {
            if let (index, token) = try? matchTokenSelect(reader, from: normed, dim: dim), index == 0 {
                classToken = token
            } else {
                auxReader = reader
            }
        }
        guard let classToken, let auxReader else { throw fail(analysis.producer(of: normed), "expected the class token taken for the head") }
        let headNode = try onlyConsumer(classToken, ["Gemm", "MatMul"], expecting: "the classification head")
        let head = try matchLinear(headNode, input: classToken, role: "head")
        guard head.inFeatures == dim else { throw fail(headNode, "head reads \(head.inFeatures) features, expected \(dim)") }
        emit(.headWeight, head.weight)
        emit(.headBias, head.bias)

        var patchMax: String
        if auxReader.opType == "Slice" {
            let patches = try matchPatchSlice(auxReader, from: normed, tokens: tokens)
            let auxNode = try onlyConsumer(patches, ["MatMul", "Gemm"], expecting: "the auxiliary head")
            let aux = try matchLinear(auxNode, input: patches, role: "aux_head")
            try emitAuxHead(aux, like: head, at: auxNode)
            patchMax = try matchTokenMax(aux.output)
        } else {
            let aux = try matchLinear(auxReader, input: normed, role: "aux_head")
            try emitAuxHead(aux, like: head, at: auxReader)
            let slice = try onlyConsumer(aux.output, ["Slice"], expecting: "the patch tokens of the auxiliary head")
            patchMax = try matchTokenMax(try matchPatchSlice(slice, from: aux.output, tokens: tokens))
        }
        let half = try onlyConsumer(patchMax, ["Mul", "Div"], expecting: "0.5 times the auxiliary head's max")
        let factor = scalarOperand(try otherOperand(half, than: patchMax))
        guard half.opType == "Mul" ? factor == 0.5 : (factor == 2 && input(half, 0) == patchMax) else {
            throw fail(half, "expected 0.5 * max (or max / 2)")
        }
        visit(half)
        let sum = try onlyConsumer(output(half), ["Add"], expecting: "head + 0.5 * aux max")
        guard try otherOperand(sum, than: output(half)) == head.output else { throw fail(sum, "expected head + 0.5 * aux max") }
        visit(sum)
        return output(sum)
    }

    private mutating func emitAuxHead(_ aux: MatchedLinear, like head: MatchedLinear, at node: ONNXNode) throws(MatchFailure) {
        guard aux.weight.shape == head.weight.shape, aux.bias != nil else {
            throw fail(node, "aux_head weight is \(aux.weight.shape), expected the head's \(head.weight.shape) with a bias")
        }
        emit(.auxHeadWeight, aux.weight)
        emit(.auxHeadBias, aux.bias)
    }

    /// Slice(x, 1, >= N, axis 1): every token but the class token.
    private mutating func matchPatchSlice(_ node: ONNXNode, from value: String, tokens: Int) throws(MatchFailure) -> String {
        guard node.opType == "Slice", input(node, 0) == value, let starts = analysis.constant(input(node, 1))?.ints,
              let ends = analysis.constant(input(node, 2))?.ints, starts == [1], ends.count == 1, ends[0] >= tokens,
              let axes = analysis.constant(input(node, 3))?.ints, axes.count == 1, normaliseAxis(axes[0], rank: 3) == 1,
              (analysis.constant(input(node, 4))?.ints ?? [1]) == [1] else {
            throw fail(node, "expected the patch tokens (Slice 1... on axis 1) for the auxiliary head")
        }
        visit(node)
        return output(node)
    }

    /// ReduceMax over the token axis, dropping it.
    private mutating func matchTokenMax(_ value: String) throws(MatchFailure) -> String {
        let max = try onlyConsumer(value, ["ReduceMax"], expecting: "the max over the patch tokens")
        let axes = analysis.opset >= 18 ? analysis.constant(input(max, 1))?.ints : max.ints("axes")
        guard let axes, axes.count == 1, normaliseAxis(axes[0], rank: 3) == 1, max.int("keepdims") == 0 else {
            throw fail(max, "expected a max over the token axis without keeping it")
        }
        visit(max)
        return output(max)
    }
}
