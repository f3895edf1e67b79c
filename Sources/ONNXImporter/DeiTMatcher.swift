import IR
import ModelDescription

/// Recognises a timm ViT-family model (DeiT, distilled DeiT, DeiT-III, ViT), or an LV-ViT
/// (its stem, skip_lam and head in `LVViTMatcher.swift`), in an ONNX op graph by following the dataflow from the image input, never by node or initializer names
/// (the exporter's names are generated, and merged equal tensors hide behind Identity nodes
/// named after other modules). Each weight gets the role (`TensorRole`) of the position where
/// it is used, so block 3's norm1 weight is `blocks.3.norm1.weight` even when the file stores
/// it as `blocks.0.norm1.weight`.
///
///     Conv -> Reshape -> Transpose -> Concat(cls[, dist], patches) -> Add pos_embed
///       (DeiT-III: -> Add pos_embed -> Concat(cls, patches))
///     blocks: x + [ls1 *] proj(attention(qkv(LN1 x))), then + [ls2 *] fc2(GELU(fc1(LN2 .)))
///     final LN -> token 0 (and 1) -> head (and head_dist, averaged)
struct DeiTMatcher {
    struct Result {
        var weights: [(name: String, weight: CanonicalWeight)]
        var heads: Int
        var layerNormEps: Double
        /// LV-ViT's residual divisor, when the branches are divided (`LVViTMatcher.swift`).
        var skipLam: Double?
    }

    let analysis: GraphAnalysis
    /// Where the matcher is, for messages ("block 3", "patch embedding").
    var context = ""
    private(set) var visited = Set<Int>()
    private var weights: [(name: String, weight: CanonicalWeight)] = []
    /// The divisor of every residual branch seen (LV-ViT's skip_lam), in order.
    var branchDivisors: [Double] = []

    init(analysis: GraphAnalysis) { self.analysis = analysis }

    mutating func visit(_ node: ONNXNode) { visited.insert(node.index) }

    mutating func emit(_ role: TensorRole, block: Int = 0, _ weight: CanonicalWeight?) {
        guard let weight else { return }
        weights.append((role.name(block: block), weight))
    }

    private mutating func emit(_ roles: (weight: TensorRole, bias: TensorRole), block: Int = 0, _ linear: MatchedLinear) {
        emit(roles.weight, block: block, linear.weight)
        emit(roles.bias, block: block, linear.bias)
    }

    private mutating func emit(_ roles: (weight: TensorRole, bias: TensorRole), block: Int = 0, _ norm: MatchedNorm) {
        emit(roles.weight, block: block, norm.weight)
        emit(roles.bias, block: block, norm.bias)
    }

    /// `x [* gamma]`: the LayerScale of a DeiT-III branch, when present.
    private mutating func matchLayerScale(_ x: String, dim: Int, role: TensorRole, block: Int) throws(MatchFailure) -> String {
        guard let (scaled, gamma) = try matchScale(x, features: dim, role: role.name(block: block)) else { return x }
        emit(role, block: block, gamma)
        return scaled
    }

    mutating func match() throws(MatchFailure) -> Result {
        context = "patch embedding"
        let convolutionalStem = startsWithConvolutionalStem()
        let (patches, dim) = convolutionalStem ? try matchConvolutionalStem() : try matchPatchEmbedding()
        context = "class token and position embedding"
        let (tokens, prefixTokens) = try matchTokens(patches, dim: dim)

        var x = tokens
        var depth = 0
        var heads: Int?
        var epsValues: [Double] = []
        var norm: MatchedNorm
        while true {
            context = "block \(depth) (or the final norm)"
            norm = try matchLayerNorm(x, dim: dim, role: "layer norm")
            epsValues.append(norm.eps)
            let readers = consumers(norm.output)
            guard readers.count == 1, let first = readers.first, first.opType == "MatMul" || first.opType == "Gemm",
                  let features = analysis.fact(output(first))?.shape.last, features == 3 * dim || first.opType == "MatMul"
                    && shape(input(first, 1)).last == 3 * dim else { break }
            context = "block \(depth)"
            let i = depth
            emit((.norm1Weight, .norm1Bias), block: i, norm)
            let qkv = try matchLinear(first, input: norm.output, role: "attn.qkv", biasOptional: true)
            try expect(qkv, [3 * dim, dim], at: first)
            emit((.qkvWeight, .qkvBias), block: i, qkv)
            let attention = try matchAttention(qkv.output, dim: dim)
            if let heads, heads != attention.heads {
                throw fail(analysis.producer(of: qkv.output), "\(attention.heads) heads where block 0 has \(heads)")
            }
            heads = attention.heads
            let projNode = try onlyConsumer(attention.output, ["MatMul", "Gemm"], expecting: "the attn.proj linear")
            let proj = try matchLinear(projNode, input: attention.output, role: "attn.proj")
            try expect(proj, [dim, dim], at: projNode)
            emit((.projWeight, .projBias), block: i, proj)
            let afterAttention = try matchResidual(x, branch: try matchBranchDivisor(try matchLayerScale(proj.output, dim: dim, role: .layerScale1, block: i)))

            let norm2 = try matchLayerNorm(afterAttention, dim: dim, role: "norm2")
            epsValues.append(norm2.eps)
            emit((.norm2Weight, .norm2Bias), block: i, norm2)
            let fc1Node = try onlyConsumer(norm2.output, ["MatMul", "Gemm"], expecting: "the mlp.fc1 linear")
            let fc1 = try matchLinear(fc1Node, input: norm2.output, role: "mlp.fc1")
            guard fc1.inFeatures == dim else { throw fail(fc1Node, "mlp.fc1 reads \(fc1.inFeatures) features, expected \(dim)") }
            emit((.fc1Weight, .fc1Bias), block: i, fc1)
            let activation = try matchGELU(fc1.output)
            let fc2Node = try onlyConsumer(activation, ["MatMul", "Gemm"], expecting: "the mlp.fc2 linear")
            let fc2 = try matchLinear(fc2Node, input: activation, role: "mlp.fc2")
            try expect(fc2, [dim, fc1.outFeatures], at: fc2Node)
            emit((.fc2Weight, .fc2Bias), block: i, fc2)
            x = try matchResidual(afterAttention, branch: try matchBranchDivisor(try matchLayerScale(fc2.output, dim: dim, role: .layerScale2, block: i)))
            depth += 1
        }
        context = "final norm and head"
        guard depth > 0, let heads else { throw fail(analysis.producer(of: x), "no transformer block follows the token embedding") }
        emit((.normWeight, .normBias), norm)
        let logits = convolutionalStem ? try matchTokenLabellingHead(norm.output, dim: dim)
            : try matchHeads(norm.output, dim: dim, distilled: prefixTokens == 2)
        let outputs = analysis.model.graph.outputs
        guard outputs.count == 1, let graphOutput = outputs.first, analysis.resolve(graphOutput.name) == logits else {
            throw fail(analysis.producer(of: logits), "the logits must be the graph's only output (outputs: \(outputs.map(\.name).joined(separator: ", ")))")
        }
        guard let eps = epsValues.first, epsValues.allSatisfy({ $0 == eps }) else {
            throw fail(nil, "layer norms use different epsilons \(Set(epsValues).sorted())")
        }
        let skipLam = try commonBranchDivisor(blocks: depth)
        return Result(weights: weights, heads: heads, layerNormEps: eps, skipLam: skipLam)
    }

    private func expect(_ linear: MatchedLinear, _ shape: [Int], at node: ONNXNode) throws(MatchFailure) {
        guard linear.weight.shape == shape else {
            throw fail(node, "weight is \(linear.weight.shape) in timm's [out, in] layout, expected \(shape)")
        }
    }

    /// `x + branch`, where x feeds nothing but the branch's layer norm and this Add.
    private mutating func matchResidual(_ x: String, branch: String) throws(MatchFailure) -> String {
        let add = try onlyConsumer(branch, ["Add"], expecting: "the residual Add")
        guard try otherOperand(add, than: branch) == x else { throw fail(add, "the residual Add must add the block's input") }
        visit(add)
        for reader in consumers(x) where !visited.contains(reader.index) {
            throw fail(reader, "reads the residual stream '\(x)' outside the recognised block")
        }
        return output(add)
    }

    /// Conv(kernel = stride = P) -> [B, C, Np] -> [B, Np, C].
    private mutating func matchPatchEmbedding() throws(MatchFailure) -> (String, Int) {
        let image = analysis.inputName
        let inputShape = analysis.inputShape
        let readers = consumers(image)
        guard readers.count == 1, let conv = readers.first, conv.opType == "Conv", input(conv, 0) == image else {
            throw fail(readers.first, "the image input must feed one Conv (the patch embedding), found \(readers.map(\.opType))")
        }
        let w = shape(input(conv, 1))
        guard w.count == 4, w[2] == w[3], w[1] == inputShape[1], w[2] > 0 else {
            throw fail(conv, "patch embedding weight has shape \(w), expected [C, \(inputShape[1]), P, P]")
        }
        let patch = w[2], dim = w[0]
        guard conv.ints("strides") == [patch, patch], (conv.ints("kernel_shape") ?? [patch, patch]) == [patch, patch],
              (conv.ints("pads") ?? [0, 0, 0, 0]).allSatisfy({ $0 == 0 }), (conv.ints("dilations") ?? [1, 1]) == [1, 1],
              (conv.int("group") ?? 1) == 1, ["NOTSET", "VALID"].contains(conv.string("auto_pad") ?? "NOTSET"),
              inputShape[2] % patch == 0, inputShape[3] % patch == 0 else {
            throw fail(conv, "patch embedding must be a Conv with kernel = stride = \(patch), no padding, on an image divisible by it")
        }
        guard !input(conv, 2).isEmpty else { throw fail(conv, "patch embedding has no bias") }
        emit(.patchWeight, try weight(input(conv, 1), shape: w, at: conv, role: "patch embedding weight"))
        emit(.patchBias, try weight(input(conv, 2), shape: [dim], at: conv, role: "patch embedding bias"))
        visit(conv)
        return (try flattenPatchGrid(conv, dim: dim, count: (inputShape[2] / patch) * (inputShape[3] / patch)), dim)
    }

    /// The patch convolution's [B, C, h, w] grid -> [B, Np, C] tokens (Reshape or Flatten then
    /// Transpose, or Transpose then Reshape).
    mutating func flattenPatchGrid(_ conv: ONNXNode, dim: Int, count: Int) throws(MatchFailure) -> String {
        let batch = analysis.inputShape[0]
        let first = try onlyConsumer(output(conv), ["Reshape", "Flatten", "Transpose"], expecting: "flattening of the patch grid")
        let second = try onlyConsumer(output(first), ["Transpose", "Reshape"], expecting: "patches as tokens")
        let channelsFirst = first.opType != "Transpose" && shape(output(first)) == [batch, dim, count]
            && second.opType == "Transpose" && second.ints("perm") == [0, 2, 1]
        let channelsLast = first.opType == "Transpose" && first.ints("perm") == [0, 2, 3, 1] && second.opType == "Reshape"
        guard channelsFirst || channelsLast, shape(output(second)) == [batch, count, dim] else {
            throw fail(second, "expected the patch grid flattened to [\(batch), \(count), \(dim)] tokens")
        }
        visit(first)
        visit(second)
        return output(second)
    }

    /// Concat(cls_token[, dist_token], patches) on the token axis, then + pos_embed; or, for
    /// DeiT-III (positions for the patches only), + pos_embed first, then the Concat.
    private mutating func matchTokens(_ patches: String, dim: Int) throws(MatchFailure) -> (String, Int) {
        let readers = consumers(patches)
        if readers.count == 1, let add = readers.first, add.opType == "Add" {
            let positioned = try addPositions(add, to: patches, dim: dim)
            let (tokens, prefix) = try concatTokens(positioned, dim: dim)
            return (tokens, prefix)
        }
        let (tokens, prefix) = try concatTokens(patches, dim: dim)
        let add = try onlyConsumer(tokens, ["Add"], expecting: "the position embedding Add")
        return (try addPositions(add, to: tokens, dim: dim), prefix)
    }

    private mutating func concatTokens(_ patches: String, dim: Int) throws(MatchFailure) -> (String, Int) {
        let concat = try onlyConsumer(patches, ["Concat"], expecting: "Concat of the class token and the patches")
        let parts = analysis.inputs(of: concat)
        guard normaliseAxis(concat.int("axis") ?? 0, rank: 3) == 1, parts.last == patches, parts.count == 2 || parts.count == 3 else {
            throw fail(concat, "expected the class (and distillation) token prepended to the patches on axis 1")
        }
        for (i, part) in parts.dropLast().enumerated() {
            emit(i == 0 ? .classToken : .distillationToken, try tokenWeight(part, dim: dim, at: concat))
        }
        visit(concat)
        return (output(concat), parts.count - 1)
    }

    private mutating func addPositions(_ add: ONNXNode, to tokens: String, dim: Int) throws(MatchFailure) -> String {
        let tokenCount = shape(tokens).count == 3 ? shape(tokens)[1] : 0
        emit(.positionEmbedding, try weight(try otherOperand(add, than: tokens), shape: [1, tokenCount, dim], at: add, role: "position embedding"))
        visit(add)
        return output(add)
    }

    /// A [1, 1, C] token: a weight used directly, or expanded to the batch.
    private mutating func tokenWeight(_ value: String, dim: Int, at concat: ONNXNode) throws(MatchFailure) -> CanonicalWeight {
        if let expand = analysis.producer(of: value), expand.opType == "Expand", !analysis.folded.contains(expand.index) {
            visit(expand)
            return try weight(input(expand, 0), shape: [1, 1, dim], at: expand, role: "token")
        }
        guard let tensor = analysis.weight(value), let floats = tensor.floatTensor, let type = tensor.dataType.floatElementType,
              tensor.shape.count == 3, tensor.shape[0] >= 1, tensor.shape[1] == 1, tensor.shape[2] == dim else {
            throw fail(concat, "token '\(value)' is not a constant [1, 1, \(dim)] tensor")
        }
        // A folded Expand repeats the token per batch item; its first row is the token.
        return CanonicalWeight(tensor: floats.rows(0..<1), sourceType: type, origin: tensor.name)
    }

    /// Token 0 (and 1) of the final norm -> head (and head_dist) -> logits.
    mutating func matchHeads(_ normed: String, dim: Int, distilled: Bool) throws(MatchFailure) -> String {
        var selected: [Int: String] = [:]
        for reader in consumers(normed) {
            let (index, token) = try matchTokenSelect(reader, from: normed, dim: dim)
            guard selected[index] == nil else { throw fail(reader, "token \(index) is taken twice") }
            selected[index] = token
        }
        let expected = distilled ? [0, 1] : [0]
        guard selected.keys.sorted() == expected, let classToken = selected[0] else {
            throw fail(analysis.producer(of: normed), "expected the head(s) to read token(s) \(expected) of the final norm, found \(selected.keys.sorted())")
        }
        let headNode = try onlyConsumer(classToken, ["Gemm", "MatMul"], expecting: "the classification head")
        let head = try matchLinear(headNode, input: classToken, role: "head")
        guard head.inFeatures == dim else { throw fail(headNode, "head reads \(head.inFeatures) features, expected \(dim)") }
        emit((.headWeight, .headBias), head)
        guard distilled, let distToken = selected[1] else { return head.output }
        let distNode = try onlyConsumer(distToken, ["Gemm", "MatMul"], expecting: "the distillation head")
        let headDist = try matchLinear(distNode, input: distToken, role: "head_dist")
        try expect(headDist, head.weight.shape, at: distNode)
        emit((.headDistWeight, .headDistBias), headDist)
        let sum = try onlyConsumer(head.output, ["Add"], expecting: "the sum of both heads")
        guard try otherOperand(sum, than: head.output) == headDist.output else { throw fail(sum, "expected head + head_dist") }
        visit(sum)
        let average = try onlyConsumer(output(sum), ["Div", "Mul"], expecting: "the average of both heads")
        let factor = scalarOperand(try otherOperand(average, than: output(sum)))
        guard input(average, 0) == output(sum), average.opType == "Div" ? factor == 2 : factor == 0.5 else {
            throw fail(average, "expected (head + head_dist) / 2")
        }
        visit(average)
        return output(average)
    }

    /// Gather(axis 1, k) -> [B, C], or Slice(axis 1, k..k+1) then Squeeze / Reshape / Flatten.
    mutating func matchTokenSelect(_ node: ONNXNode, from value: String, dim: Int) throws(MatchFailure) -> (Int, String) {
        let batch = analysis.inputShape[0]
        if node.opType == "Gather", input(node, 0) == value, normaliseAxis(node.int("axis") ?? 0, rank: 3) == 1,
           let index = scalarOperand(input(node, 1)), shape(output(node)) == [batch, dim] {
            visit(node)
            return (SmallTensor.intValue(index), output(node))
        }
        if node.opType == "Slice", input(node, 0) == value, let starts = analysis.constant(input(node, 1))?.ints,
           let ends = analysis.constant(input(node, 2))?.ints, starts.count == 1, ends.count == 1, ends[0] == starts[0] + 1,
           let axes = analysis.constant(input(node, 3))?.ints, axes.count == 1, normaliseAxis(axes[0], rank: 3) == 1 {
            let squeeze = try onlyConsumer(output(node), ["Squeeze", "Reshape", "Flatten"], expecting: "removal of the token axis")
            guard shape(output(squeeze)) == [batch, dim] else { throw fail(squeeze, "expected the token as [\(batch), \(dim)]") }
            visit(node)
            visit(squeeze)
            return (starts[0], output(squeeze))
        }
        throw fail(node, "expected the class (or distillation) token taken from the final norm (Gather or Slice on axis 1)")
    }
}
