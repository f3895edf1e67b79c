import IR

/// Builds the dense graph of an LV-ViT (`LVViTTensors` has the architecture and its sources).
/// Values carry the official module names where there is a module, so the reference
/// activations forward hooks capture line up:
///
///     conv2d -> batch_norm -> relu (x3: patch_embed.conv{k}, .bn{k}, .relu{k}) -> patch_embed
///       (a folded stem: conv2d with bias, named bn{k}, -> relu)
///     concat cls -> + pos_embed = pos_drop
///     block i: x + proj(attn(qkv(norm1 x))) / skip_lam, then + fc2(gelu(fc1(norm2 .))) / skip_lam
///     norm -> head(token 0) + aux_head(every token) max over tokens 1... / 2 = logits
///
/// Every constant is a checkpoint tensor: BatchNorm reads its four tensors at run time (a
/// folded stem, from an ONNX export, has conv biases instead), skip_lam and the aux head's 0.5
/// are op attributes. PyTorch divides by skip_lam; so does the graph (`divide`), and the aux
/// head's `0.5 * m` is `m / 2`, the same correctly rounded value.
enum LVViTGraphBuilder {
    static func build(_ model: RecognizedModel) throws(GraphError) -> Graph {
        let a = model.architecture
        var builder = ModelGraphBuilder(model)
        let norm = Op.layerNorm(try LayerNorm(eps: a.layerNormEps))
        let linear = ModelGraphBuilder.linear
        let batchNorm = Op.batchNorm(try BatchNorm(eps: LVViTTensors.batchNormEps))

        var x = ActivationName.pixelValues.name
        for (index, stage) in LVViTStem.stages.enumerated() {
            let k = index + 1
            let conv = Op.conv2d(try Conv2d(stride: stage.stride, padding: stage.padding))
            if a.stemBatchNorm {
                x = try builder.add(.stem(k, .conv), conv, [x, builder.weight(stage.convWeight)])
                x = try builder.add(.stem(k, .batchNorm), batchNorm, [x] + stage.norms.map { builder.weight($0) })
            } else {
                // BatchNorm folded into the convolution (an ONNX export): its output is what the
                // checkpoint's bn{k} computes, and is named so that references line up.
                x = try builder.add(.stem(k, .batchNorm), conv, [x, builder.weight(stage.convWeight), builder.weight(stage.convBias)])
            }
            x = try builder.add(.stem(k, .relu), .relu, [x])
        }
        try builder.add(.patchEmbed, .patchEmbed(try PatchEmbed(patch: a.patchSize / 2)),
                        [x, builder.weight(.patchWeight), builder.weight(.patchBias)])
        try builder.add(.tokens, .concatTokens, [builder.weight(.classToken), ActivationName.patchEmbed.name])
        x = try builder.add(.posDrop, .add, [ActivationName.tokens.name, builder.weight(.positionEmbedding)])

        let attention = Op.attention(try Attention(heads: a.heads))
        // Dividing by 1 changes nothing: such a model (LV-ViT-T) has no divide nodes.
        let scaling: ResidualScaling = a.skipLam == 1 ? .none : .divide(.divide(try Divide(divisor: a.skipLam)))
        for i in 0..<a.depth {
            x = try builder.addBlock(i, input: x, norm: norm, attention: attention, qkvBias: a.qkvBias, scaling: scaling)
        }
        let normed = try builder.add(.norm, norm, [x, builder.weight(.normWeight), builder.weight(.normBias)])
        let classToken = try builder.add(.preLogits, .takeToken(try TakeToken(index: 0)), [normed])
        if a.auxHead {
            let head = try builder.add(.head, linear, [classToken, builder.weight(.headWeight), builder.weight(.headBias)])
            let aux = try builder.add(.auxHead, linear, [normed, builder.weight(.auxHeadWeight), builder.weight(.auxHeadBias)])
            let best = try builder.add(.auxMax, .maxTokens(try MaxTokens(start: 1)), [aux])
            let half = try builder.add(.auxHalf, .divide(try Divide(divisor: 2)), [best])
            try builder.add(.logits, .add, [head, half])
        } else {
            try builder.add(.logits, linear, [classToken, builder.weight(.headWeight), builder.weight(.headBias)])
        }
        return try builder.finish(naming: model.scheme)
    }
}
