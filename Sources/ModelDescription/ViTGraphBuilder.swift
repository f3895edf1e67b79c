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
        let linear = ModelGraphBuilder.linear

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
        let scaling: ResidualScaling = a.layerScale ? .layerScale : .none
        for i in 0..<a.depth {
            x = try builder.addBlock(i, input: x, norm: norm, attention: attention, qkvBias: a.qkvBias, scaling: scaling)
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
        return try builder.finish(naming: model.scheme)
    }
}
