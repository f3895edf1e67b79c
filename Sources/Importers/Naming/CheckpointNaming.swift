import Foundation

/// Checkpoint naming schemes as tables: each source family maps its tensor names to the
/// canonical timm names, with `{i}` standing for a block index. Fused tensors (Hugging Face
/// keeps q, k and v apart; timm fuses them into qkv) are listed as parts concatenated along
/// the first axis, in order.
public struct NamingScheme: Sendable {
    public struct Rule: Sendable {
        public var source: String
        public var canonical: String
    }

    public struct Fusion: Sendable {
        public var canonical: String
        public var parts: [String]
    }

    public var name: String
    /// Prefixes the whole state dict may carry (`module.` from DataParallel, `model.`).
    public var strippedPrefixes: [String]
    public var rules: [Rule]
    public var fusions: [Fusion]

    init(_ name: String, strippedPrefixes: [String] = ["module.", "model."], rules: [(String, String)], fusions: [(String, [String])] = []) {
        self.name = name
        self.strippedPrefixes = strippedPrefixes
        self.rules = rules.map { Rule(source: $0.0, canonical: $0.1) }
        self.fusions = fusions.map { Fusion(canonical: $0.0, parts: $0.1) }
    }
}

extension NamingScheme {
    /// timm and Facebook DeiT: already canonical.
    public static let timm = NamingScheme("timm", rules: [
        ("cls_token", "cls_token"),
        ("dist_token", "dist_token"),
        ("pos_embed", "pos_embed"),
        ("patch_embed.proj.weight", "patch_embed.proj.weight"),
        ("patch_embed.proj.bias", "patch_embed.proj.bias"),
        ("blocks.{i}.norm1.weight", "blocks.{i}.norm1.weight"),
        ("blocks.{i}.norm1.bias", "blocks.{i}.norm1.bias"),
        ("blocks.{i}.attn.qkv.weight", "blocks.{i}.attn.qkv.weight"),
        ("blocks.{i}.attn.qkv.bias", "blocks.{i}.attn.qkv.bias"),
        ("blocks.{i}.attn.proj.weight", "blocks.{i}.attn.proj.weight"),
        ("blocks.{i}.attn.proj.bias", "blocks.{i}.attn.proj.bias"),
        ("blocks.{i}.norm2.weight", "blocks.{i}.norm2.weight"),
        ("blocks.{i}.norm2.bias", "blocks.{i}.norm2.bias"),
        ("blocks.{i}.mlp.fc1.weight", "blocks.{i}.mlp.fc1.weight"),
        ("blocks.{i}.mlp.fc1.bias", "blocks.{i}.mlp.fc1.bias"),
        ("blocks.{i}.mlp.fc2.weight", "blocks.{i}.mlp.fc2.weight"),
        ("blocks.{i}.mlp.fc2.bias", "blocks.{i}.mlp.fc2.bias"),
        ("norm.weight", "norm.weight"),
        ("norm.bias", "norm.bias"),
        ("head.weight", "head.weight"),
        ("head.bias", "head.bias"),
        ("head_dist.weight", "head_dist.weight"),
        ("head_dist.bias", "head_dist.bias"),
    ])

    /// Hugging Face transformers ViT (`vit.`) and DeiT (`deit.`) models.
    public static let huggingFace: NamingScheme = {
        var rules: [(String, String)] = []
        for prefix in ["vit.", "deit."] {
            let layer = prefix + "encoder.layer.{i}."
            rules += [
                (prefix + "embeddings.cls_token", "cls_token"),
                (prefix + "embeddings.distillation_token", "dist_token"),
                (prefix + "embeddings.position_embeddings", "pos_embed"),
                (prefix + "embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight"),
                (prefix + "embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias"),
                (layer + "layernorm_before.weight", "blocks.{i}.norm1.weight"),
                (layer + "layernorm_before.bias", "blocks.{i}.norm1.bias"),
                (layer + "attention.attention.query.weight", "blocks.{i}.attn.q.weight"),
                (layer + "attention.attention.query.bias", "blocks.{i}.attn.q.bias"),
                (layer + "attention.attention.key.weight", "blocks.{i}.attn.k.weight"),
                (layer + "attention.attention.key.bias", "blocks.{i}.attn.k.bias"),
                (layer + "attention.attention.value.weight", "blocks.{i}.attn.v.weight"),
                (layer + "attention.attention.value.bias", "blocks.{i}.attn.v.bias"),
                (layer + "attention.output.dense.weight", "blocks.{i}.attn.proj.weight"),
                (layer + "attention.output.dense.bias", "blocks.{i}.attn.proj.bias"),
                (layer + "layernorm_after.weight", "blocks.{i}.norm2.weight"),
                (layer + "layernorm_after.bias", "blocks.{i}.norm2.bias"),
                (layer + "intermediate.dense.weight", "blocks.{i}.mlp.fc1.weight"),
                (layer + "intermediate.dense.bias", "blocks.{i}.mlp.fc1.bias"),
                (layer + "output.dense.weight", "blocks.{i}.mlp.fc2.weight"),
                (layer + "output.dense.bias", "blocks.{i}.mlp.fc2.bias"),
                (prefix + "layernorm.weight", "norm.weight"),
                (prefix + "layernorm.bias", "norm.bias"),
            ]
        }
        rules += [
            ("classifier.weight", "head.weight"),
            ("classifier.bias", "head.bias"),
            ("cls_classifier.weight", "head.weight"),
            ("cls_classifier.bias", "head.bias"),
            ("distillation_classifier.weight", "head_dist.weight"),
            ("distillation_classifier.bias", "head_dist.bias"),
        ]
        return NamingScheme("huggingface", rules: rules, fusions: [
            ("blocks.{i}.attn.qkv.weight", ["blocks.{i}.attn.q.weight", "blocks.{i}.attn.k.weight", "blocks.{i}.attn.v.weight"]),
            ("blocks.{i}.attn.qkv.bias", ["blocks.{i}.attn.q.bias", "blocks.{i}.attn.k.bias", "blocks.{i}.attn.v.bias"]),
        ])
    }()

    public static let all: [NamingScheme] = [.timm, .huggingFace]

    /// The canonical name for `name`, or nil when no rule matches.
    public func canonicalName(for name: String) -> String? {
        var stripped = name
        for prefix in strippedPrefixes where stripped.hasPrefix(prefix) {
            stripped.removeFirst(prefix.count)
            break
        }
        for rule in rules {
            if let index = NamingScheme.match(template: rule.source, name: stripped) {
                return rule.canonical.replacingOccurrences(of: "{i}", with: String(index ?? 0))
            }
        }
        return nil
    }

    /// Matches `name` against a template with at most one `{i}`; returns the index (nil for
    /// templates without one) wrapped in an optional for "matched".
    static func match(template: String, name: String) -> Int?? {
        guard let range = template.range(of: "{i}") else { return template == name ? .some(nil) : nil }
        let head = template[..<range.lowerBound]
        let tail = template[range.upperBound...]
        guard name.hasPrefix(head), name.hasSuffix(tail), name.count > head.count + tail.count else { return nil }
        let digits = name.dropFirst(head.count).dropLast(tail.count)
        guard digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let index = Int(digits),
              String(index) == digits else { return nil }
        return .some(index)
    }
}
