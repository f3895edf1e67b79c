import IR

/// LV-ViT as TokenLabeling defines it (`tlt/models/lvvit.py` and `layers.py`, class `LV_ViT`
/// with `PatchEmbed4_2`) and IdleViT's `lvvit.py` copies it (`LVViT`, `IdleLVViT`):
///
///     patch_embed: conv1 7x7/2 pad 3 (no bias) -> bn1 -> relu -> conv2 3x3/1 pad 1 -> bn2 -> relu
///                  -> conv3 3x3/1 pad 1 -> bn3 -> relu -> proj (kernel = stride = patch / 2, bias)
///     cls_token prepended, + pos_embed [1, Np + 1, C]
///     blocks: x + attn(norm1 x) / skip_lam; x + mlp(norm2 x) / skip_lam (qkv without bias,
///             MLP ratio 3, nn.LayerNorm's eps 1e-5, exact GELU)
///     norm -> head(x[:, 0]) + 0.5 * aux_head(x[:, 1:]).max over tokens   (eval, return_dense)
///
/// LV-ViT's three stem stages, in order: each convolution's geometry and the checkpoint
/// tensors of the convolution and the BatchNorm after it (the graph builder, the ONNX matcher
/// and the cost model read them).
public enum LVViTStem {
    public struct Stage: Sendable {
        public let kernel, stride, padding: Int
        /// The convolution's weight, and its bias (present only when the BatchNorm is folded in).
        public let convWeight, convBias: TensorRole
        public let normWeight, normBias, normMean, normVariance: TensorRole
        /// The BatchNorm's tensors in its operand order: weight, bias, running mean, running variance.
        public var norms: [TensorRole] { [normWeight, normBias, normMean, normVariance] }
    }

    public static let stages = [
        Stage(kernel: 7, stride: 2, padding: 3, convWeight: .stemConv1Weight, convBias: .stemConv1Bias, normWeight: .stemNorm1Weight,
              normBias: .stemNorm1Bias, normMean: .stemNorm1Mean, normVariance: .stemNorm1Variance),
        Stage(kernel: 3, stride: 1, padding: 1, convWeight: .stemConv2Weight, convBias: .stemConv2Bias, normWeight: .stemNorm2Weight,
              normBias: .stemNorm2Bias, normMean: .stemNorm2Mean, normVariance: .stemNorm2Variance),
        Stage(kernel: 3, stride: 1, padding: 1, convWeight: .stemConv3Weight, convBias: .stemConv3Bias, normWeight: .stemNorm3Weight,
              normBias: .stemNorm3Bias, normMean: .stemNorm3Mean, normVariance: .stemNorm3Variance),
    ]
}

/// This is the tensor table (state-dict order: the model's own parameters cls_token and
/// pos_embed first, then its modules) and the published configurations.
enum LVViTTensors: FamilyTensorTable {
    /// torch's `BatchNorm2d` default, which `PatchEmbed4_2` uses.
    static let batchNormEps = 1e-5
    /// torch's `nn.LayerNorm` default: LV-ViT passes `norm_layer=nn.LayerNorm` unchanged.
    static let layerNormEps = 1e-5

    static func shape(of role: TensorRole, _ a: ModelArchitecture) -> [Int]? {
        let c = a.embedDim, w = a.stemChannels, half = a.patchSize / 2
        switch role {
        case .classToken: return [1, 1, c]
        case .positionEmbedding: return [1, a.tokenCount, c]
        case .stemConv1Weight: return [w, a.inChannels, LVViTStem.stages[0].kernel, LVViTStem.stages[0].kernel]
        case .stemConv2Weight: return [w, w, LVViTStem.stages[1].kernel, LVViTStem.stages[1].kernel]
        case .stemConv3Weight: return [w, w, LVViTStem.stages[2].kernel, LVViTStem.stages[2].kernel]
        case .stemConv1Bias, .stemConv2Bias, .stemConv3Bias: return a.stemBatchNorm ? nil : [w]
        case .stemNorm1Weight, .stemNorm1Bias, .stemNorm1Mean, .stemNorm1Variance, .stemNorm2Weight, .stemNorm2Bias, .stemNorm2Mean,
             .stemNorm2Variance, .stemNorm3Weight, .stemNorm3Bias, .stemNorm3Mean, .stemNorm3Variance:
            return a.stemBatchNorm ? [w] : nil
        case .patchWeight: return [c, w, half, half]
        case .patchBias, .norm1Weight, .norm1Bias, .norm2Weight, .norm2Bias, .projBias, .fc2Bias, .normWeight, .normBias: return [c]
        case .qkvWeight: return [3 * c, c]
        case .qkvBias: return a.qkvBias ? [3 * c] : nil
        case .projWeight: return [c, c]
        case .fc1Weight: return [a.mlpHidden, c]
        case .fc1Bias: return [a.mlpHidden]
        case .fc2Weight: return [c, a.mlpHidden]
        case .headWeight: return [a.classes, c]
        case .headBias: return [a.classes]
        case .auxHeadWeight: return a.auxHead ? [a.classes, c] : nil
        case .auxHeadBias: return a.auxHead ? [a.classes] : nil
        case .distillationToken, .layerScale1, .layerScale2, .headDistWeight, .headDistBias: return nil
        }
    }

    static let globalsBefore: [TensorRole] = [.classToken, .positionEmbedding]
        + LVViTStem.stages.flatMap { [$0.convWeight, $0.convBias] + $0.norms } + [.patchWeight, .patchBias]
    static let perBlock: [TensorRole] = [.norm1Weight, .norm1Bias, .qkvWeight, .qkvBias, .projWeight, .projBias,
                                         .norm2Weight, .norm2Bias, .fc1Weight, .fc1Bias, .fc2Weight, .fc2Bias]
    static let globalsAfter: [TensorRole] = [.normWeight, .normBias, .headWeight, .headBias, .auxHeadWeight, .auxHeadBias]
    static let roles: [TensorRole] = globalsBefore + perBlock + globalsAfter


    /// The configurations TokenLabeling registers (`lvvit_t`, `lvvit_s`, `lvvit_m`, `lvvit_l`),
    /// for what weights cannot tell: heads, skip_lam, and the evaluation crop of its
    /// `default_cfgs` (0.9 for T and S, 1.0 for M and L).
    struct Published {
        let name: String
        let dim, depth, heads, stemChannels: Int
        let skipLam: Double
        let cropPercent: Double
    }

    static let published: [Published] = [
        Published(name: "lvvit_t", dim: 240, depth: 12, heads: 4, stemChannels: 64, skipLam: 1, cropPercent: 0.9),
        Published(name: "lvvit_s", dim: 384, depth: 16, heads: 6, stemChannels: 64, skipLam: 2, cropPercent: 0.9),
        Published(name: "lvvit_m", dim: 512, depth: 20, heads: 8, stemChannels: 64, skipLam: 2, cropPercent: 1.0),
        Published(name: "lvvit_l", dim: 768, depth: 24, heads: 12, stemChannels: 128, skipLam: 3, cropPercent: 1.0),
    ]

    /// The published configuration with this geometry (patch 16, MLP ratio 3), if any.
    static func published(dim: Int, depth: Int, stemChannels: Int, patchSize: Int, mlpHidden: Int) -> Published? {
        guard patchSize == 16, mlpHidden == 3 * dim else { return nil }
        return published.first { $0.dim == dim && $0.depth == depth && $0.stemChannels == stemChannels }
    }
}
