/// The names of the values a model graph computes, typed. They are timm's module names where
/// timm has a module (so forward hooks in PyTorch capture reference activations under the
/// same names), and this is the only place they are spelled out: builders, passes, bundles,
/// verification and the command line make and read them through these cases.
public enum ActivationName: Hashable, Sendable, CustomStringConvertible {
    /// The image batch, the graph's input.
    case pixelValues
    /// A value of LV-ViT's convolutional stem, before `patch_embed` (its projection):
    /// `patch_embed.conv{k}`, `patch_embed.bn{k}`, `patch_embed.relu{k}`, k = 1, 2, 3.
    case stem(Int, StemPart)
    case patchEmbed
    /// Patches plus their position embedding, before the class token (DeiT-III only).
    case patchPositions
    /// Class (and distillation) token prepended.
    case tokens
    /// Tokens entering the first block.
    case posDrop
    /// The output of block i.
    case block(Int)
    /// A value inside block i.
    case blockPart(Int, BlockPart)
    case norm
    case preLogits
    case preLogitsDist
    case head
    case headDist
    /// LV-ViT's token-labelling head on every token of `norm` ([B, N, classes]; the class
    /// token's row is computed but not used), its max over the patch tokens, and half of that.
    case auxHead
    case auxMax
    case auxHalf
    /// The model's prediction (for distilled models, the mean of both heads; for LV-ViT,
    /// head + aux_half).
    case logits

    /// The idle block's selected rows: `blocks.{i}.selected`.
    public static func selected(_ block: Int) -> ActivationName { .blockPart(block, .selected) }

    public var description: String {
        switch self {
        case .pixelValues: return "pixel_values"
        case .stem(let stage, let part): return "patch_embed." + part.rawValue + String(stage)
        case .patchEmbed: return "patch_embed"
        case .patchPositions: return "patch_embed_pos"
        case .tokens: return "tokens"
        case .posDrop: return "pos_drop"
        case .block(let i): return ActivationName.blockPrefix + String(i)
        case .blockPart(let i, let part): return ActivationName.blockPrefix + String(i) + "." + part.rawValue
        case .norm: return "norm"
        case .preLogits: return "pre_logits"
        case .preLogitsDist: return "pre_logits_dist"
        case .head: return "head"
        case .headDist: return "head_dist"
        case .auxHead: return "aux_head"
        case .auxMax: return "aux_max"
        case .auxHalf: return "aux_half"
        case .logits: return "logits"
        }
    }

    /// The name as a string (the IR's value name).
    public var name: String { description }

    static let blockPrefix = "blocks."

    /// Parses a value name back; nil for a name no model here produces.
    public init?(_ name: String) {
        if name.hasPrefix(ActivationName.blockPrefix) {
            let rest = name.dropFirst(ActivationName.blockPrefix.count)
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, digits.count <= 4, let index = Int(digits), String(index) == digits else { return nil }
            let tail = rest.dropFirst(digits.count)
            if tail.isEmpty { self = .block(index); return }
            guard tail.hasPrefix("."), let part = BlockPart(rawValue: String(tail.dropFirst())) else { return nil }
            self = .blockPart(index, part)
            return
        }
        let globals: [ActivationName] = [.pixelValues, .patchEmbed, .patchPositions, .tokens, .posDrop, .norm, .preLogits,
                                         .preLogitsDist, .head, .headDist, .auxHead, .auxMax, .auxHalf, .logits]
            + (1...3).flatMap { stage in StemPart.allCases.map { ActivationName.stem(stage, $0) } }
        guard let match = globals.first(where: { $0.description == name }) else { return nil }
        self = match
    }

    /// The block this value belongs to, if any.
    public var blockIndex: Int? {
        switch self {
        case .block(let i), .blockPart(let i, _): return i
        default: return nil
        }
    }
}

/// The values of one stage of LV-ViT's stem (its modules `conv{k}`, `bn{k}`; the ReLU is one
/// shared module there, so its output is named by stage here).
public enum StemPart: String, CaseIterable, Sendable {
    case conv
    case batchNorm = "bn"
    case relu
}

/// The values inside a block: timm's submodule names for the dense block, and the idle
/// block's own values (IDLEVIT.md §3).
public enum BlockPart: String, CaseIterable, Sendable {
    case norm1
    case qkv = "attn.qkv"
    case attention = "attn.attention"
    case proj = "attn.proj"
    case layerScale1 = "ls1"
    /// LV-ViT: the attention branch divided by skip_lam.
    case attentionScaled = "attn_scaled"
    case attentionResidual = "attn_residual"
    case norm2
    case fc1 = "mlp.fc1"
    case activation = "mlp.act"
    case fc2 = "mlp.fc2"
    case layerScale2 = "ls2"
    /// LV-ViT: the MLP branch divided by skip_lam.
    case mlpScaled = "mlp_scaled"
    // The idle block.
    case selected
    case tokensSelected = "tokens_selected"
    case norm1Selected = "norm1_selected"
    case mlpResidual = "mlp_residual"
    // Token cut loss diagnostics (IDLEVIT.md §5), reported per idle layer.
    case cutLossInter = "cut_loss.inter"
    case cutLossIntra = "cut_loss.intra"
    case cutLoss = "cut_loss.total"
}
