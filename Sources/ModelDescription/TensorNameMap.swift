import IR

/// How one checkpoint family names the tensors (llama.cpp's `TensorNameMap`): for each role,
/// the source names that hold it, with `{i}` for the block index. A role may be stored as
/// parts concatenated along the first axis (Hugging Face keeps q, k and v apart; timm fuses
/// them into qkv).
public struct NamingScheme: Sendable {
    public enum Source: Sendable {
        case tensor(NameTemplate)
        /// Parts stacked along axis 0, in order.
        case parts([NameTemplate])

        var templates: [NameTemplate] {
            switch self {
            case .tensor(let template): return [template]
            case .parts(let parts): return parts
            }
        }
    }

    public var name: String
    /// Prefixes a whole state dict may carry (`module.` from DataParallel, `model.`).
    public var strippedPrefixes: [String]
    /// Every way this scheme stores each role; several entries are aliases.
    public var sources: [(role: TensorRole, source: Source)]

    /// `name` without the first of `strippedPrefixes` it starts with.
    public func stripped(_ name: String) -> String {
        for prefix in strippedPrefixes where name.hasPrefix(prefix) { return String(name.dropFirst(prefix.count)) }
        return name
    }

    /// The role, block and part (index into `.parts`) a source name holds, or nil.
    public func role(of sourceName: String) -> (role: TensorRole, match: NameTemplate.Match, part: Int?)? {
        let stripped = stripped(sourceName)
        for (role, source) in sources {
            for (index, template) in source.templates.enumerated() {
                if let match = template.match(stripped) {
                    if case .parts = source { return (role, match, index) }
                    return (role, match, nil)
                }
            }
        }
        return nil
    }
}

extension NamingScheme {
    /// timm, and Facebook's DeiT / DeiT-III releases: timm's own names, with DeiT-III's
    /// original LayerScale names `gamma_1` / `gamma_2` as aliases.
    public static let timm: NamingScheme = {
        var sources: [(TensorRole, Source)] = ViTTensors.roles.map { ($0, .tensor($0.canonicalName)) }
        sources += [
            (.layerScale1, .tensor("blocks.{i}.gamma_1")),
            (.layerScale2, .tensor("blocks.{i}.gamma_2")),
        ]
        return NamingScheme(name: "timm", strippedPrefixes: ["module.", "model."], sources: sources)
    }()

    /// Hugging Face transformers ViT (`vit.`) and DeiT (`deit.`) models.
    public static let huggingFace: NamingScheme = {
        var sources: [(TensorRole, Source)] = []
        for prefix in ["vit.", "deit."] {
            let layer = prefix + "encoder.layer.{i}."
            func t(_ text: String) -> Source { .tensor(NameTemplate(text)) }
            func qkv(_ suffix: String) -> Source {
                .parts(["query", "key", "value"].map { NameTemplate(layer + "attention.attention.\($0)." + suffix) })
            }
            sources += [
                (.classToken, t(prefix + "embeddings.cls_token")),
                (.distillationToken, t(prefix + "embeddings.distillation_token")),
                (.positionEmbedding, t(prefix + "embeddings.position_embeddings")),
                (.patchWeight, t(prefix + "embeddings.patch_embeddings.projection.weight")),
                (.patchBias, t(prefix + "embeddings.patch_embeddings.projection.bias")),
                (.norm1Weight, t(layer + "layernorm_before.weight")),
                (.norm1Bias, t(layer + "layernorm_before.bias")),
                (.qkvWeight, qkv("weight")),
                (.qkvBias, qkv("bias")),
                (.projWeight, t(layer + "attention.output.dense.weight")),
                (.projBias, t(layer + "attention.output.dense.bias")),
                (.norm2Weight, t(layer + "layernorm_after.weight")),
                (.norm2Bias, t(layer + "layernorm_after.bias")),
                (.fc1Weight, t(layer + "intermediate.dense.weight")),
                (.fc1Bias, t(layer + "intermediate.dense.bias")),
                (.fc2Weight, t(layer + "output.dense.weight")),
                (.fc2Bias, t(layer + "output.dense.bias")),
                (.normWeight, t(prefix + "layernorm.weight")),
                (.normBias, t(prefix + "layernorm.bias")),
            ]
        }
        sources += [
            (.headWeight, .tensor("classifier.weight")),
            (.headBias, .tensor("classifier.bias")),
            (.headWeight, .tensor("cls_classifier.weight")),
            (.headBias, .tensor("cls_classifier.bias")),
            (.headDistWeight, .tensor("distillation_classifier.weight")),
            (.headDistBias, .tensor("distillation_classifier.bias")),
        ]
        return NamingScheme(name: "huggingface", strippedPrefixes: ["module.", "model."], sources: sources)
    }()

    /// The ViT family's schemes, which its recogniser chooses from.
    public static let all: [NamingScheme] = [.timm, .huggingFace]

    /// LV-ViT's official names (TokenLabeling's `tlt/models/lvvit.py` and IdleViT's `lvvit.py`,
    /// state dicts of `LV_ViT` / `IdleLVViT`): timm's names for the tokens, blocks, norm and
    /// head, `patch_embed.conv{k}` / `patch_embed.bn{k}` for the stem, `aux_head`.
    public static let lvvit: NamingScheme = {
        let sources: [(TensorRole, Source)] = LVViTTensors.roles.map { ($0, .tensor($0.canonicalName)) }
        return NamingScheme(name: "lvvit", strippedPrefixes: ["module.", "model."], sources: sources)
    }()
}
