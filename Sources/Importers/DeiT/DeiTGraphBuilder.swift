import IR

/// Builds the canonical dense DeiT graph (IDLEVIT.md §1) from recognised weights. Node names
/// follow timm's modules, so `patch_embed`, `pos_drop`, `blocks.{i}`, `norm` and `logits` line
/// up with reference activations captured by forward hooks.
public enum DeiTGraphBuilder {
    public static let inputName = "pixel_values"

    public static func build(_ model: RecognizedDeiT) throws(GraphError) -> Graph {
        let a = model.architecture
        var constants: [Constant] = []
        for weight in model.weights.weights {
            constants.append(Constant(name: weight.name, tensor: weight.tensor, sourceType: weight.sourceType))
        }
        let input = GraphInput(name: inputName, type: ValueType(.f32, [.batch, .fixed(a.inChannels), .fixed(a.imageSize), .fixed(a.imageSize)]))
        var builder = GraphBuilder(Graph(inputs: [input], constants: constants, architecture: a))
        let norm = Op.layerNorm(try LayerNorm(eps: a.layerNormEps))
        let linear = Op.linear(.full)

        try builder.add("patch_embed", .patchEmbed(try PatchEmbed(patch: a.patchSize)), [inputName, "patch_embed.proj.weight", "patch_embed.proj.bias"])
        try builder.add("tokens", .concatTokens, (a.distilled ? ["cls_token", "dist_token"] : ["cls_token"]) + ["patch_embed"])
        var x = try builder.add("pos_drop", .add, ["tokens", "pos_embed"])
        for i in 0..<a.depth {
            let b = "blocks.\(i)."
            try builder.add(b + "norm1", norm, [x, b + "norm1.weight", b + "norm1.bias"])
            try builder.add(b + "attn.qkv", linear, [b + "norm1", b + "attn.qkv.weight", b + "attn.qkv.bias"])
            try builder.add(b + "attn.attention", .attention(try Attention(heads: a.heads)), [b + "attn.qkv"])
            try builder.add(b + "attn.proj", linear, [b + "attn.attention", b + "attn.proj.weight", b + "attn.proj.bias"])
            try builder.add(b + "attn_residual", .add, [x, b + "attn.proj"])
            try builder.add(b + "norm2", norm, [b + "attn_residual", b + "norm2.weight", b + "norm2.bias"])
            try builder.add(b + "mlp.fc1", linear, [b + "norm2", b + "mlp.fc1.weight", b + "mlp.fc1.bias"])
            try builder.add(b + "mlp.act", .gelu, [b + "mlp.fc1"])
            try builder.add(b + "mlp.fc2", linear, [b + "mlp.act", b + "mlp.fc2.weight", b + "mlp.fc2.bias"])
            x = try builder.add("blocks.\(i)", .add, [b + "attn_residual", b + "mlp.fc2"])
        }
        try builder.add("norm", norm, [x, "norm.weight", "norm.bias"])
        try builder.add("pre_logits", .takeToken(try TakeToken(index: 0)), ["norm"])
        if a.distilled {
            try builder.add("pre_logits_dist", .takeToken(try TakeToken(index: 1)), ["norm"])
            try builder.add("head", linear, ["pre_logits", "head.weight", "head.bias"])
            try builder.add("head_dist", linear, ["pre_logits_dist", "head_dist.weight", "head_dist.bias"])
            try builder.add("logits", .mean, ["head", "head_dist"])
        } else {
            try builder.add("logits", linear, ["pre_logits", "head.weight", "head.bias"])
        }
        var graph = builder.graph
        graph.outputs = ["logits"]
        graph.metadata["naming"] = model.scheme
        try GraphValidator.validate(graph)
        return graph
    }
}
