/// The multi-head attention subgraph of a timm block, from the qkv linear's output to the
/// input of `attn.proj`:
///
///     qkv [B, N, 3C] -> Reshape [B, N, 3, H, d] -> Transpose (2, 0, 3, 1, 4) -> [3, B, H, N, d]
///       -> q, k, v by Split + Squeeze, Gather, or Slice + Squeeze on axis 0
///     (q · s1) @ Transpose(k · s2) · s3 -> Softmax(last axis) -> @ v
///       -> Transpose (0, 2, 1, 3) -> Reshape [B, N, C]
///
/// The scale may sit on q (timm's own attention: Mul by d^-0.5), on both q and k (the
/// exporter's scaled_dot_product_attention: Mul by sqrt(d^-0.5) each, computed from shapes
/// and folded), or on the logits; Div by a constant counts as Mul by its reciprocal. Their
/// product must be d^-0.5, so a graph that scales differently is refused, not mis-imported.
extension DeiTMatcher {
    mutating func matchAttention(_ qkv: String, dim: Int) throws(MatchFailure) -> (output: String, heads: Int) {
        let batch = analysis.inputShape[0]
        let tokens = shape(qkv).count == 3 ? shape(qkv)[1] : 0
        let reshape = try onlyConsumer(qkv, ["Reshape"], expecting: "Reshape of qkv into [B, N, 3, heads, head_dim]")
        let split5 = shape(output(reshape))
        guard split5.count == 5, split5[0] == batch, split5[1] == tokens, split5[2] == 3, split5[3] > 0, split5[3] * split5[4] == dim else {
            throw fail(reshape, "qkv reshaped to \(split5), expected [\(batch), \(tokens), 3, heads, head_dim]")
        }
        let heads = split5[3], headDim = split5[4]
        let permute = try onlyConsumer(output(reshape), ["Transpose"], expecting: "Transpose (2, 0, 3, 1, 4) of q, k, v")
        guard permute.ints("perm") == [2, 0, 3, 1, 4] else { throw fail(permute, "expected perm (2, 0, 3, 1, 4)") }
        visit(reshape)
        visit(permute)
        let (q, k, v) = try splitQKV(output(permute))
        let perHead = [batch, heads, tokens, headDim]
        for (name, value) in [("q", q), ("k", k), ("v", v)] where shape(value) != perHead {
            throw fail(analysis.producer(of: value), "\(name) has shape \(shape(value)), expected \(perHead)")
        }

        // q (scaled) @ k^T (scaled)
        let (qScaled, qScale) = try followScales(q)
        var (kScaled, kScale) = try followScales(k)
        let kTranspose = try onlyConsumer(kScaled, ["Transpose"], expecting: "Transpose of k (0, 1, 3, 2)")
        guard kTranspose.ints("perm") == [0, 1, 3, 2] else { throw fail(kTranspose, "expected k transposed with perm (0, 1, 3, 2)") }
        visit(kTranspose)
        let (kTransposed, kScaleAfter) = try followScales(output(kTranspose))
        kScaled = kTransposed
        kScale *= kScaleAfter
        let scores = try onlyConsumer(qScaled, ["MatMul"], expecting: "MatMul q @ k^T")
        guard input(scores, 0) == qScaled, input(scores, 1) == kScaled else { throw fail(scores, "expected q @ k^T") }
        visit(scores)
        let (logits, logitScale) = try followScales(output(scores))
        let scale = qScale * kScale * logitScale
        guard Self.close(scale, 1 / Double(headDim).squareRoot(), tolerance: 1e-5) else {
            throw fail(scores, "attention scale is \(scale), not head_dim^-0.5 = \(1 / Double(headDim).squareRoot()) for head_dim \(headDim)")
        }
        let softmax = try onlyConsumer(logits, ["Softmax"], expecting: "Softmax over keys")
        guard normaliseAxis(softmax.int("axis") ?? (analysis.opset >= 13 ? -1 : 1), rank: 4) == 3 else {
            throw fail(softmax, "Softmax must run over the last axis")
        }
        visit(softmax)

        // probabilities @ v -> heads concatenated
        let mix = try onlyConsumer(output(softmax), ["MatMul"], expecting: "MatMul attention @ v")
        guard input(mix, 0) == output(softmax), input(mix, 1) == v, consumers(v).count == 1 else { throw fail(mix, "expected attention @ v") }
        visit(mix)
        let merge = try onlyConsumer(output(mix), ["Transpose"], expecting: "Transpose (0, 2, 1, 3) merging heads")
        guard merge.ints("perm") == [0, 2, 1, 3] else { throw fail(merge, "expected perm (0, 2, 1, 3)") }
        let flatten = try onlyConsumer(output(merge), ["Reshape"], expecting: "Reshape to [B, N, C]")
        guard shape(output(flatten)) == [batch, tokens, dim] else {
            throw fail(flatten, "heads merged to \(shape(output(flatten))), expected [\(batch), \(tokens), \(dim)]")
        }
        visit(merge)
        visit(flatten)
        return (output(flatten), heads)
    }

    /// q, k and v out of [3, B, H, N, d].
    private mutating func splitQKV(_ stacked: String) throws(MatchFailure) -> (String, String, String) {
        let readers = consumers(stacked)
        var parts: [String?] = [nil, nil, nil]
        if readers.count == 1, let split = readers.first, split.opType == "Split" {
            let sizes = analysis.opset >= 13 ? analysis.constant(input(split, 1))?.ints : split.ints("split")
            guard normaliseAxis(split.int("axis") ?? 0, rank: 5) == 0, split.outputs.count == 3, sizes == nil || sizes == [1, 1, 1] else {
                throw fail(split, "expected q, k, v split into three along axis 0")
            }
            visit(split)
            for (i, part) in split.outputs.enumerated() {
                parts[i] = try squeezeFirstAxis(analysis.resolve(part))
            }
        } else {
            for node in readers {
                let index: Int
                switch node.opType {
                case "Gather":
                    guard node.int("axis") ?? 0 == 0, let value = scalarOperand(input(node, 1)) else { throw fail(node, "expected q, k or v taken on axis 0") }
                    index = SmallTensor.intValue(value)
                    guard (0..<3).contains(index), parts[index] == nil else { throw fail(node, "takes part \(index) of q, k, v twice or out of range") }
                    visit(node)
                    parts[index] = output(node)
                case "Slice":
                    guard let starts = analysis.constant(input(node, 1))?.ints, let ends = analysis.constant(input(node, 2))?.ints,
                          starts.count == 1, ends.count == 1, ends[0] == starts[0] + 1,
                          (analysis.constant(input(node, 3))?.ints ?? [0]) == [0] else {
                        throw fail(node, "expected q, k or v sliced on axis 0")
                    }
                    index = starts[0]
                    guard (0..<3).contains(index), parts[index] == nil else { throw fail(node, "takes part \(index) of q, k, v twice or out of range") }
                    visit(node)
                    parts[index] = try squeezeFirstAxis(output(node))
                default:
                    throw fail(node, "expected q, k, v to be split (Split, Gather or Slice on axis 0)")
                }
            }
        }
        guard let q = parts[0], let k = parts[1], let v = parts[2] else {
            throw fail(analysis.producer(of: stacked), "q, k and v are not all taken from the stacked qkv")
        }
        return (q, k, v)
    }

    private mutating func squeezeFirstAxis(_ value: String) throws(MatchFailure) -> String {
        let squeeze = try onlyConsumer(value, ["Squeeze", "Reshape"], expecting: "Squeeze of axis 0")
        guard shape(output(squeeze)) == Array(shape(value).dropFirst()) else { throw fail(squeeze, "expected axis 0 removed") }
        visit(squeeze)
        return output(squeeze)
    }

    /// Follows Mul / Div by scalar constants from `value`, returning where the chain ends and
    /// the factor it applies.
    private mutating func followScales(_ value: String) throws(MatchFailure) -> (String, Double) {
        var current = value
        var factor = 1.0
        while true {
            let readers = consumers(current)
            guard readers.count == 1, let node = readers.first, node.opType == "Mul" || node.opType == "Div" else { return (current, factor) }
            let other = try otherOperand(node, than: current)
            guard let constant = scalarOperand(other), constant != 0, constant.isFinite else { return (current, factor) }
            if node.opType == "Div" {
                guard input(node, 0) == current else { throw fail(node, "divides a constant by attention values") }
                factor /= constant
            } else {
                factor *= constant
            }
            visit(node)
            current = output(node)
        }
    }
}
