import IR

/// What a tensor is in a model, whatever a checkpoint calls it (llama.cpp's `MODEL_TENSOR`).
/// The canonical names are timm's state-dict names (`canonicalName`), which bundles and
/// `convert --to safetensors` write; other naming schemes map onto these roles in
/// `TensorNameMap`.
public enum TensorRole: String, CaseIterable, Sendable {
    case classToken
    case distillationToken
    case positionEmbedding
    case patchWeight
    case patchBias
    case norm1Weight
    case norm1Bias
    case qkvWeight
    case qkvBias
    case projWeight
    case projBias
    case layerScale1
    case norm2Weight
    case norm2Bias
    case fc1Weight
    case fc1Bias
    case fc2Weight
    case fc2Bias
    case layerScale2
    case normWeight
    case normBias
    case headWeight
    case headBias
    case headDistWeight
    case headDistBias
    // LV-ViT (TokenLabeling's `PatchEmbed4_2`): three convolutions, each followed by
    // BatchNorm (running statistics included), before `patch_embed.proj`; the conv biases
    // exist only where an exporter folded the BatchNorm into the convolution.
    case stemConv1Weight
    case stemConv1Bias
    case stemNorm1Weight
    case stemNorm1Bias
    case stemNorm1Mean
    case stemNorm1Variance
    case stemConv2Weight
    case stemConv2Bias
    case stemNorm2Weight
    case stemNorm2Bias
    case stemNorm2Mean
    case stemNorm2Variance
    case stemConv3Weight
    case stemConv3Bias
    case stemNorm3Weight
    case stemNorm3Bias
    case stemNorm3Mean
    case stemNorm3Variance
    /// LV-ViT's token-labelling head, applied to every patch token.
    case auxHeadWeight
    case auxHeadBias

    /// timm's name (llama.cpp's `TENSOR_NAMES`): what bundles hold and timm loads strictly.
    public var canonicalName: NameTemplate {
        switch self {
        case .classToken: return "cls_token"
        case .distillationToken: return "dist_token"
        case .positionEmbedding: return "pos_embed"
        case .patchWeight: return "patch_embed.proj.weight"
        case .patchBias: return "patch_embed.proj.bias"
        case .norm1Weight: return "blocks.{i}.norm1.weight"
        case .norm1Bias: return "blocks.{i}.norm1.bias"
        case .qkvWeight: return "blocks.{i}.attn.qkv.weight"
        case .qkvBias: return "blocks.{i}.attn.qkv.bias"
        case .projWeight: return "blocks.{i}.attn.proj.weight"
        case .projBias: return "blocks.{i}.attn.proj.bias"
        case .layerScale1: return "blocks.{i}.ls1.gamma"
        case .norm2Weight: return "blocks.{i}.norm2.weight"
        case .norm2Bias: return "blocks.{i}.norm2.bias"
        case .fc1Weight: return "blocks.{i}.mlp.fc1.weight"
        case .fc1Bias: return "blocks.{i}.mlp.fc1.bias"
        case .fc2Weight: return "blocks.{i}.mlp.fc2.weight"
        case .fc2Bias: return "blocks.{i}.mlp.fc2.bias"
        case .layerScale2: return "blocks.{i}.ls2.gamma"
        case .normWeight: return "norm.weight"
        case .normBias: return "norm.bias"
        case .headWeight: return "head.weight"
        case .headBias: return "head.bias"
        case .headDistWeight: return "head_dist.weight"
        case .headDistBias: return "head_dist.bias"
        case .stemConv1Weight: return "patch_embed.conv1.weight"
        case .stemConv1Bias: return "patch_embed.conv1.bias"
        case .stemNorm1Weight: return "patch_embed.bn1.weight"
        case .stemNorm1Bias: return "patch_embed.bn1.bias"
        case .stemNorm1Mean: return "patch_embed.bn1.running_mean"
        case .stemNorm1Variance: return "patch_embed.bn1.running_var"
        case .stemConv2Weight: return "patch_embed.conv2.weight"
        case .stemConv2Bias: return "patch_embed.conv2.bias"
        case .stemNorm2Weight: return "patch_embed.bn2.weight"
        case .stemNorm2Bias: return "patch_embed.bn2.bias"
        case .stemNorm2Mean: return "patch_embed.bn2.running_mean"
        case .stemNorm2Variance: return "patch_embed.bn2.running_var"
        case .stemConv3Weight: return "patch_embed.conv3.weight"
        case .stemConv3Bias: return "patch_embed.conv3.bias"
        case .stemNorm3Weight: return "patch_embed.bn3.weight"
        case .stemNorm3Bias: return "patch_embed.bn3.bias"
        case .stemNorm3Mean: return "patch_embed.bn3.running_mean"
        case .stemNorm3Variance: return "patch_embed.bn3.running_var"
        case .auxHeadWeight: return "aux_head.weight"
        case .auxHeadBias: return "aux_head.bias"
        }
    }

    /// A buffer, not a learned parameter: BatchNorm's running statistics (PyTorch's
    /// `parameters()` leaves them out, so parameter counts do too).
    public var isBuffer: Bool {
        switch self {
        case .stemNorm1Mean, .stemNorm1Variance, .stemNorm2Mean, .stemNorm2Variance, .stemNorm3Mean, .stemNorm3Variance: return true
        default: return false
        }
    }

    public var isPerBlock: Bool { canonicalName.isPerBlock }

    /// The tensor's name in block `block` (or its global name).
    public func name(block: Int = 0) -> String { canonicalName.name(block: block) }
}

/// One tensor a model of some architecture has: its role, block, and shape.
public struct ExpectedTensor: Hashable, Sendable {
    public var role: TensorRole
    /// nil for a tensor outside the blocks.
    public var block: Int?
    public var shape: [Int]

    public var name: String { role.name(block: block ?? 0) }
}

/// A family's tensor table: the roles before the blocks, in each block and after them, in
/// state-dict order, and each role's shape for an architecture (nil: the architecture does not
/// have it, e.g. LayerScale in DeiT).
protocol FamilyTensorTable {
    static var globalsBefore: [TensorRole] { get }
    static var perBlock: [TensorRole] { get }
    static var globalsAfter: [TensorRole] { get }
    static func shape(of role: TensorRole, _ a: ModelArchitecture) -> [Int]?
}

extension FamilyTensorTable {
    /// Every tensor of `a`, in state-dict order (the order bundles and `convert --to
    /// safetensors` write). `a` must be valid (`validate()`), which bounds the depth and every
    /// product in the shapes.
    static func expected(_ a: ModelArchitecture) -> [ExpectedTensor] {
        var list: [ExpectedTensor] = []
        func append(_ roles: [TensorRole], block: Int?) {
            for role in roles {
                if let shape = shape(of: role, a) { list.append(ExpectedTensor(role: role, block: block, shape: shape)) }
            }
        }
        append(globalsBefore, block: nil)
        for i in 0..<a.depth { append(perBlock, block: i) }
        append(globalsAfter, block: nil)
        return list
    }
}

/// The tensor table of the ViT family: which roles an architecture has, with what shapes, in
/// timm's state-dict order.
enum ViTTensors: FamilyTensorTable {
    static func shape(of role: TensorRole, _ a: ModelArchitecture) -> [Int]? {
        let c = a.embedDim
        switch role {
        case .classToken: return [1, 1, c]
        case .distillationToken: return a.distilled ? [1, 1, c] : nil
        case .positionEmbedding: return [1, a.prefixPositions ? a.tokenCount : a.patchCount, c]
        case .patchWeight: return [c, a.inChannels, a.patchSize, a.patchSize]
        case .patchBias: return [c]
        case .norm1Weight, .norm1Bias, .norm2Weight, .norm2Bias, .projBias, .fc2Bias, .normWeight, .normBias: return [c]
        case .qkvWeight: return [3 * c, c]
        case .qkvBias: return a.qkvBias ? [3 * c] : nil
        case .projWeight: return [c, c]
        case .layerScale1, .layerScale2: return a.layerScale ? [c] : nil
        case .fc1Weight: return [a.mlpHidden, c]
        case .fc1Bias: return [a.mlpHidden]
        case .fc2Weight: return [c, a.mlpHidden]
        case .headWeight: return [a.classes, c]
        case .headBias: return [a.classes]
        case .headDistWeight: return a.distilled ? [a.classes, c] : nil
        case .headDistBias: return a.distilled ? [a.classes] : nil
        default: return nil
        }
    }

    /// timm's state-dict order (the model's own parameters in registration order, then its
    /// modules): cls_token, pos_embed, dist_token, patch_embed, blocks (norm1, attn, ls1,
    /// norm2, mlp, ls2), norm, head, head_dist.
    static let globalsBefore: [TensorRole] = [.classToken, .positionEmbedding, .distillationToken, .patchWeight, .patchBias]
    static let perBlock: [TensorRole] = [.norm1Weight, .norm1Bias, .qkvWeight, .qkvBias, .projWeight, .projBias, .layerScale1,
                                         .norm2Weight, .norm2Bias, .fc1Weight, .fc1Bias, .fc2Weight, .fc2Bias, .layerScale2]
    static let globalsAfter: [TensorRole] = [.normWeight, .normBias, .headWeight, .headBias, .headDistWeight, .headDistBias]
    /// Every role a ViT-family checkpoint can hold.
    static let roles: [TensorRole] = globalsBefore + perBlock + globalsAfter

}
