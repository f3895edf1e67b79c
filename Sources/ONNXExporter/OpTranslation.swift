import IR

/// One function per IR op, each writing standard ONNX (opset 17+) nodes that end in a value
/// named like the IR value. Shapes are built from the batch seen at run time or use -1 for it,
/// never from a batch size known at export. The dense ops mirror what `torch.onnx.export` makes
/// of timm's modules, so ONNX Runtime's graph optimisations (GELU, LayerNorm, MatMul + bias
/// fusions) apply as they do to a PyTorch export, and idlevit's own ONNX importer reads a dense
/// export back.
struct OpTranslation {
    var emitter: GraphEmitter
    let graph: Graph

    /// The extents of an IR value's non-batch dimensions.
    func extents(_ value: String, at node: Node) throws(ONNXExportError) -> [Int] {
        guard let type = graph.type(of: value) else { throw .unsupported(node: node.name, reason: "reads '\(value)', which the graph does not define") }
        var extents: [Int] = []
        for (axis, dim) in type.shape.enumerated() {
            switch dim {
            case .fixed(let n): extents.append(n)
            case .batch where axis == 0: continue
            case .batch: throw .unsupported(node: node.name, reason: "'\(value)' has a batch dimension at axis \(axis)")
            }
        }
        return extents
    }

    mutating func translate(_ node: Node) throws(ONNXExportError) {
        switch node.op {
        case .patchEmbed(let op): try patchEmbed(node, patch: op.patch)
        case .concatTokens: try concatTokens(node)
        case .add: try add(node)
        case .scale: try scale(node)
        case .layerNorm(let op): try layerNorm(node, eps: op.eps)
        case .linear(let op): try linear(node, rows: op.rows)
        case .gelu: try gelu(node)
        case .attention(let op): try attention(node, heads: op.heads)
        case .tokenSelect(let op): try tokenSelect(node, heads: op.heads, keep: op.keep, prefix: op.prefix)
        case .gatherTokens: try gatherTokens(node)
        case .scatterTokens: try scatterTokens(node)
        case .takeToken(let op): try takeToken(node, index: op.index)
        case .mean: try mean(node)
        case .conv2d, .batchNorm, .relu, .divide, .maxTokens: try translateConvolutional(node)
        }
    }

    // MARK: embedding

    /// Conv (kernel = stride = P) -> [B, C, Np] -> [B, Np, C], as timm's PatchEmbed.
    mutating func patchEmbed(_ node: Node, patch: Int) throws(ONNXExportError) {
        let out = try extents(node.name, at: node)
        let (patches, channels) = (out[0], out[1])
        let conv = try emitter.emit("Conv", node.inputs, node.name + "/proj",
                                    [("kernel_shape", .ints([patch, patch])), ("strides", .ints([patch, patch]))])
        let flat = try emitter.emit("Reshape", [conv, try emitter.int64s([-1, channels, patches])], node.name + "/flatten")
        try emitter.emit("Transpose", [flat], node.name, [("perm", .ints([0, 2, 1]))])
    }

    /// The [1, 1, C] class (and distillation) token expanded over the batch, then the patches.
    mutating func concatTokens(_ node: Node) throws(ONNXExportError) {
        guard let patches = node.inputs.last else { throw .unsupported(node: node.name, reason: "has no inputs") }
        let channels = try extents(patches, at: node)[1]
        var parts: [String] = []
        for token in node.inputs.dropLast() {
            parts.append(try emitter.expandOverBatch(token, rest: [1, channels], output: node.name + "/" + token))
        }
        try emitter.emit("Concat", parts + [patches], node.name, [("axis", .int(1))])
    }

    // MARK: block arithmetic

    mutating func add(_ node: Node) throws(ONNXExportError) {
        try emitter.emit("Add", node.inputs, node.name)
    }

    /// x * gamma per channel (LayerScale).
    mutating func scale(_ node: Node) throws(ONNXExportError) {
        try emitter.emit("Mul", node.inputs, node.name)
    }

    mutating func layerNorm(_ node: Node, eps: Double) throws(ONNXExportError) {
        try emitter.emit("LayerNormalization", node.inputs, node.name, [("axis", .int(-1)), ("epsilon", .float(Float(eps)))])
    }

    /// y = x W^T (+ b). On [B, C] (the heads) one Gemm with transB; on [B, N, C] a MatMul with
    /// the transposed weight and an Add, as torch exports a Linear.
    mutating func linear(_ node: Node, rows: Range<Int>?) throws(ONNXExportError) {
        var (x, weight) = (node.inputs[0], node.inputs[1])
        var bias = node.inputs.count > 2 ? node.inputs[2] : nil
        if let rows {
            weight = try emitter.rows(weight, rows)
            bias = try bias.map { (b) throws(ONNXExportError) in try emitter.rows(b, rows) }
        }
        if try extents(x, at: node).count == 1 {
            try emitter.emit("Gemm", [x, weight] + (bias.map { [$0] } ?? []), node.name, [("transB", .int(1))])
            return
        }
        guard let bias else {
            try emitter.emit("MatMul", [x, try emitter.transposed(weight)], node.name)
            return
        }
        x = try emitter.emit("MatMul", [x, try emitter.transposed(weight)], node.name + "/MatMul")
        try emitter.emit("Add", [x, bias], node.name)
    }

    /// Exact GELU: the Gelu op from opset 20, before it 0.5 x (1 + erf(x / sqrt 2)) in the form
    /// torch exports (ONNX Runtime fuses it back into one kernel).
    mutating func gelu(_ node: Node) throws(ONNXExportError) {
        let x = node.inputs[0]
        if emitter.opset >= 20 {
            try emitter.emit("Gelu", [x], node.name)
            return
        }
        let scaled = try emitter.emit("Div", [x, try emitter.floatScalar(Float(2.0.squareRoot()))], node.name + "/scaled")
        let erf = try emitter.emit("Erf", [scaled], node.name + "/erf")
        let plusOne = try emitter.emit("Add", [erf, try emitter.floatScalar(1)], node.name + "/erf_plus_one")
        let timesX = try emitter.emit("Mul", [x, plusOne], node.name + "/times_x")
        try emitter.emit("Mul", [timesX, try emitter.floatScalar(0.5)], node.name)
    }

    /// Multi-head scaled dot-product attention on packed qkv [B, S, 3C] (timm's layout: q, k,
    /// v blocks, each split into heads), or on separate q, k, v [B, S, C].
    mutating func attention(_ node: Node, heads: Int) throws(ONNXExportError) {
        let shape = try extents(node.name, at: node)
        let (tokens, channels) = (shape[0], shape[1])
        guard heads > 0, channels % heads == 0 else { throw .unsupported(node: node.name, reason: "\(channels) channels do not split into \(heads) heads") }
        let headSize = channels / heads
        let q, k, v: String
        if node.inputs.count == 1 {
            let split = try emitter.emit("Reshape", [node.inputs[0], try emitter.int64s([-1, tokens, 3, heads, headSize])], node.name + "/heads")
            let stacked = try emitter.emit("Transpose", [split], node.name + "/qkv", [("perm", .ints([2, 0, 3, 1, 4]))])
            let parts = ["q", "k", "v"].map { node.name + "/" + $0 + "_stacked" }
            try emitter.emit("Split", [stacked, try emitter.int64s([1, 1, 1])], outputs: parts, [("axis", .int(0))])
            let axis = try emitter.int64s([0])
            q = try emitter.emit("Squeeze", [parts[0], axis], node.name + "/q")
            k = try emitter.emit("Squeeze", [parts[1], axis], node.name + "/k")
            v = try emitter.emit("Squeeze", [parts[2], axis], node.name + "/v")
        } else {
            let perHead = try emitter.int64s([-1, tokens, heads, headSize])
            var split: [String] = []
            for (input, part) in zip(node.inputs, ["q", "k", "v"]) {
                let reshaped = try emitter.emit("Reshape", [input, perHead], node.name + "/" + part + "_heads")
                split.append(try emitter.emit("Transpose", [reshaped], node.name + "/" + part, [("perm", .ints([0, 2, 1, 3]))]))
            }
            (q, k, v) = (split[0], split[1], split[2])
        }
        // timm scales q before the product: the same rounding as PyTorch.
        let scaled = try emitter.emit("Mul", [q, try emitter.floatScalar(Float(1 / Double(headSize).squareRoot()))], node.name + "/q_scaled")
        let keys = try emitter.emit("Transpose", [k], node.name + "/k_transposed", [("perm", .ints([0, 1, 3, 2]))])
        let logits = try emitter.emit("MatMul", [scaled, keys], node.name + "/logits")
        let weights = try emitter.emit("Softmax", [logits], node.name + "/weights", [("axis", .int(-1))])
        let mixed = try emitter.emit("MatMul", [weights, v], node.name + "/mixed")
        let merged = try emitter.emit("Transpose", [mixed], node.name + "/merged", [("perm", .ints([0, 2, 1, 3]))])
        try emitter.emit("Reshape", [merged, try emitter.int64s([-1, tokens, channels])], node.name)
    }

    // MARK: token selection

    /// IdleViT's selection (IDLEVIT.md §3.2-3.4) on the block's LN1 output x [B, N, C]: the
    /// prefix tokens, then the top `keep` image tokens by mean over heads of q_cls . k_j, as
    /// int64 [B, prefix + keep].
    ///
    /// The score is computed as the interpreter computes it, in double precision with the class
    /// query folded into the key projection: q = W_q x_0 + b_q, u = W_k^T q, score_j = u . x_j.
    /// Of the forms tried in ONNX Runtime on full-size DeiTs, fed PyTorch's own LN1 rows so that
    /// only the form differs (Fixtures/check_onnx_heldout.py --analyse-scoring), this one comes
    /// closest to the reference's score (float32 keys, float64 dot product): at most 6.0e-7 of
    /// the largest score, against 7.1e-7 with a float32 class query, 7.6e-7 with float32 keys
    /// and a double dot product, 8.1e-7 all in float32 and 9.2e-7 folded in float32. Real DeiT
    /// weights leave margins of ~2e-5. The terms common to all tokens of an image (q . b_k, and
    /// the division by the number of heads) cannot change the order and are left out. Folding
    /// also makes scoring cost 2 C^2 + N C per image instead of the N C^2 of every key.
    ///
    /// TopK (largest, sorted) breaks ties by the lower index, as the reference does.
    mutating func tokenSelect(_ node: Node, heads: Int, keep: Int, prefix: Int) throws(ONNXExportError) {
        let (x, weight) = (node.inputs[0], node.inputs[1])
        let bias = node.inputs.count > 2 ? node.inputs[2] : nil
        let shape = try extents(x, at: node)
        let (tokens, channels) = (shape[0], shape[1])
        guard prefix >= 1, keep >= 0, prefix + keep <= tokens else {
            throw .unsupported(node: node.name, reason: "keeps \(keep) of \(tokens - prefix) image tokens")
        }
        let n = node.name
        // The prefix tokens' indices [B, P], shared by every idle layer.
        let prefixIndices = try emitter.once("prefix \(prefix)") { (e) throws(ONNXExportError) in
            try e.expandOverBatch(try e.int64s(Array(0..<prefix), shape: [1, prefix]), rest: [prefix], output: "prefix_tokens.\(prefix)")
        }
        guard keep > 0 else {
            try emitter.emit("Identity", [prefixIndices], n)
            return
        }
        let toDouble: [(name: String, value: ONNXAttributeValue)] = [("to", .int(Int(ONNXElementType.double.rawValue)))]
        let queryWeight = try emitter.emit("Cast", [try emitter.transposed(try emitter.rows(weight, 0..<channels))], n + "/query_weight", toDouble)
        let keyWeight = try emitter.emit("Cast", [try emitter.rows(weight, channels..<2 * channels)], n + "/key_weight", toDouble)

        let classRow = try emitter.emit("Gather", [x, try emitter.int64Scalar(0)], n + "/class_row", [("axis", .int(1))])
        let classRowDouble = try emitter.emit("Cast", [classRow], n + "/class_row_f64", toDouble)
        var query = try emitter.emit("MatMul", [classRowDouble, queryWeight], n + "/class_query_product")
        if let bias {
            let queryBias = try emitter.emit("Cast", [try emitter.rows(bias, 0..<channels)], n + "/query_bias", toDouble)
            query = try emitter.emit("Add", [query, queryBias], n + "/class_query")
        }
        let folded = try emitter.emit("MatMul", [query, keyWeight], n + "/folded_key")
        let column = try emitter.emit("Unsqueeze", [folded, try emitter.int64s([2])], n + "/folded_key_column")
        let tokensDouble = try emitter.emit("Cast", [x], n + "/tokens_f64", toDouble)
        let allScores = try emitter.emit("MatMul", [tokensDouble, column], n + "/all_scores")
        let flatScores = try emitter.emit("Squeeze", [allScores, try emitter.int64s([2])], n + "/all_scores_flat")
        let scores = try emitter.emit("Slice", [flatScores, try emitter.int64s([prefix]), try emitter.int64s([tokens]), try emitter.int64s([1])],
                                      n + "/scores")
        let top = [n + "/top_scores", n + "/top_image_tokens"]
        try emitter.emit("TopK", [scores, try emitter.int64s([keep])], outputs: top,
                         [("axis", .int(1)), ("largest", .int(1)), ("sorted", .int(1))])
        let picked = try emitter.emit("Add", [top[1], try emitter.int64Scalar(prefix)], n + "/top_tokens")
        try emitter.emit("Concat", [prefixIndices, picked], n, [("axis", .int(1))])
    }

    /// x[b, index[b, s]] for every image b: one Gather of whole rows of the flattened x.
    mutating func gatherTokens(_ node: Node) throws(ONNXExportError) {
        let (x, index) = (node.inputs[0], node.inputs[1])
        let shape = try extents(x, at: node)
        let rows = try emitter.flattenedRows(x, channels: shape[1])
        try emitter.emit("Gather", [rows, try emitter.flatRowIndex(index, tokens: shape[0])], node.name, [("axis", .int(0))])
    }

    /// x with rows index[b, s] replaced by rows[b, s]: ScatterND on the flattened x, whose other
    /// rows are copied unchanged.
    mutating func scatterTokens(_ node: Node) throws(ONNXExportError) {
        let (x, index, updates) = (node.inputs[0], node.inputs[1], node.inputs[2])
        let shape = try extents(x, at: node)
        let (tokens, channels) = (shape[0], shape[1])
        let flat = try emitter.flatRowIndex(index, tokens: tokens)
        let scatterIndex = try emitter.once("scatter index of " + flat) { (e) throws(ONNXExportError) in
            try e.emit("Unsqueeze", [flat, try e.int64s([2])], flat + "/column")
        }
        let scattered = try emitter.emit("ScatterND", [try emitter.flattenedRows(x, channels: channels), scatterIndex, updates],
                                         node.name + "/scattered_rows")
        try emitter.emit("Reshape", [scattered, try emitter.int64s([-1, tokens, channels])], node.name)
    }

    // MARK: head

    mutating func takeToken(_ node: Node, index: Int) throws(ONNXExportError) {
        try emitter.emit("Gather", [node.inputs[0], try emitter.int64Scalar(index)], node.name, [("axis", .int(1))])
    }

    /// The elementwise mean: (a + b) / 2 for the two heads of a distilled DeiT.
    mutating func mean(_ node: Node) throws(ONNXExportError) {
        switch node.inputs.count {
        case 0: throw .unsupported(node: node.name, reason: "has no inputs")
        case 1: try emitter.emit("Identity", node.inputs, node.name)
        default:
            let sum = try emitter.emit(node.inputs.count == 2 ? "Add" : "Sum", node.inputs, node.name + "/sum")
            try emitter.emit("Div", [sum, try emitter.floatScalar(Float(node.inputs.count))], node.name)
        }
    }
}
