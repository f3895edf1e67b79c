import IR

/// Builds the dense graph of a ViT-family model (IDLEVIT.md §1 and §6) from its recognised
/// weights. Values carry timm's module names (`ActivationName`), so `patch_embed`, `pos_drop`,
/// `blocks.{i}`, `norm` and `logits` line up with reference activations captured by forward
/// hooks.
///
///     patch_embed -> [+ pos_embed (DeiT-III)] -> concat cls[, dist] -> [+ pos_embed] = pos_drop
///     block i: x + [ls1 *] proj(attn(qkv(norm1 x))), then + [ls2 *] fc2(gelu(fc1(norm2 .)))
///     norm -> token 0 -> head (distilled: mean of head(token 0) and head_dist(token 1)) = logits
enum ViTGraphBuilder {
    static func build(_ model: RecognizedModel) throws(GraphError) -> Graph {
        let a = model.architecture
        var builder = ModelGraphBuilder(model)
        let norm = Op.layerNorm(try LayerNorm(eps: a.layerNormEps))
        let linear = Op.linear(.full)

        try builder.add(.patchEmbed, .patchEmbed(try PatchEmbed(patch: a.patchSize)),
                        [ActivationName.pixelValues.name, builder.weight(.patchWeight), builder.weight(.patchBias)])
        let prefix = [builder.weight(.classToken)] + (a.distilled ? [builder.weight(.distillationToken)] : [])
        var x: String
        if a.prefixPositions {
            try builder.add(.tokens, .concatTokens, prefix + [ActivationName.patchEmbed.name])
            x = try builder.add(.posDrop, .add, [ActivationName.tokens.name, builder.weight(.positionEmbedding)])
        } else {
            try builder.add(.patchPositions, .add, [ActivationName.patchEmbed.name, builder.weight(.positionEmbedding)])
            x = try builder.add(.posDrop, .concatTokens, prefix + [ActivationName.patchPositions.name])
        }
        let attention = Op.attention(try Attention(heads: a.heads))
        for i in 0..<a.depth {
            func part(_ p: BlockPart) -> ActivationName { .blockPart(i, p) }
            func w(_ role: TensorRole) -> String { builder.weight(role, block: i) }
            let qkvBias = a.qkvBias ? [w(.qkvBias)] : []
            let norm1 = try builder.add(part(.norm1), norm, [x, w(.norm1Weight), w(.norm1Bias)])
            let qkv = try builder.add(part(.qkv), linear, [norm1, w(.qkvWeight)] + qkvBias)
            let mixed = try builder.add(part(.attention), attention, [qkv])
            var branch = try builder.add(part(.proj), linear, [mixed, w(.projWeight), w(.projBias)])
            if a.layerScale { branch = try builder.add(part(.layerScale1), .scale, [branch, w(.layerScale1)]) }
            let residual = try builder.add(part(.attentionResidual), .add, [x, branch])
            let norm2 = try builder.add(part(.norm2), norm, [residual, w(.norm2Weight), w(.norm2Bias)])
            let fc1 = try builder.add(part(.fc1), linear, [norm2, w(.fc1Weight), w(.fc1Bias)])
            let act = try builder.add(part(.activation), .gelu, [fc1])
            branch = try builder.add(part(.fc2), linear, [act, w(.fc2Weight), w(.fc2Bias)])
            if a.layerScale { branch = try builder.add(part(.layerScale2), .scale, [branch, w(.layerScale2)]) }
            x = try builder.add(.block(i), .add, [residual, branch])
        }
        let normed = try builder.add(.norm, norm, [x, builder.weight(.normWeight), builder.weight(.normBias)])
        let classToken = try builder.add(.preLogits, .takeToken(try TakeToken(index: 0)), [normed])
        if a.distilled {
            let distToken = try builder.add(.preLogitsDist, .takeToken(try TakeToken(index: 1)), [normed])
            let head = try builder.add(.head, linear, [classToken, builder.weight(.headWeight), builder.weight(.headBias)])
            let headDist = try builder.add(.headDist, linear, [distToken, builder.weight(.headDistWeight), builder.weight(.headDistBias)])
            try builder.add(.logits, .mean, [head, headDist])
        } else {
            try builder.add(.logits, linear, [classToken, builder.weight(.headWeight), builder.weight(.headBias)])
        }
        var graph = builder.graph
        graph.outputs = [ActivationName.logits.name]
        graph.metadata["naming"] = model.scheme
        try GraphValidator.validate(graph)
        return graph
    }
}

/// `GraphBuilder` speaking the model description's vocabulary: values by `ActivationName`,
/// weights by `TensorRole`.
struct ModelGraphBuilder {
    var inner: GraphBuilder
    var graph: Graph { inner.graph }

    /// A graph of the model's weights as constants and one input, `pixel_values` [batch, C, S, S].
    init(_ model: RecognizedModel) {
        let a = model.architecture
        let constants = model.weights.weights.map { Constant(name: $0.name, tensor: $0.tensor, sourceType: $0.sourceType) }
        let input = GraphInput(name: ActivationName.pixelValues.name,
                               type: ValueType(.f32, [.batch, .fixed(a.inChannels), .fixed(a.imageSize), .fixed(a.imageSize)]))
        inner = GraphBuilder(Graph(inputs: [input], constants: constants, architecture: a))
    }

    @discardableResult
    mutating func add(_ name: ActivationName, _ op: Op, _ inputs: [String]) throws(GraphError) -> String {
        try inner.add(name.name, op, inputs)
    }

    func weight(_ role: TensorRole, block: Int = 0) -> String { role.name(block: block) }
}
