/// Which kind of graph a model is: the families share the IR, not their structure.
public enum ModelFamily: String, Hashable, Sendable, CaseIterable {
    /// timm's `VisionTransformer`: DeiT, distilled DeiT, DeiT-III (LayerScale, positions for the
    /// patches only) and the timm ViTs, with or without qkv bias.
    case vit
    /// LV-ViT (TokenLabeling, and IdleViT's `lvvit.py`): a convolutional stem before the patch
    /// projection, residual branches divided by `skip_lam`, and the token-labelling head.
    case lvvit
}

/// A model's hyper-parameters, as recognised from its weights (and what a config says that
/// weights cannot: heads, LayerNorm epsilon). What each field means for the tensors and the
/// graph is the model description's business (`ModelDescription`); here it is plain data that
/// graphs and bundles carry.
public struct ModelArchitecture: Hashable, Sendable, CustomStringConvertible {
    public var family: ModelFamily
    public var imageSize: Int
    public var patchSize: Int
    public var inChannels: Int
    public var embedDim: Int
    public var depth: Int
    public var heads: Int
    public var mlpHidden: Int
    public var classes: Int
    /// A distillation token follows the class token (DeiT distilled), with its own head.
    public var distilled: Bool
    public var layerNormEps: Double
    /// The fused qkv linear has a bias (timm's `qkv_bias`).
    public var qkvBias: Bool
    /// Residual branches are multiplied by a learned per-channel gamma (DeiT-III LayerScale).
    public var layerScale: Bool
    /// `pos_embed` has rows for the class (and distillation) token too (DeiT, ViT), rather than
    /// for the patches only, added before the class token is prepended (DeiT-III, timm's
    /// `no_embed_class`).
    public var prefixPositions: Bool
    /// LV-ViT: output channels of the stem's three convolutions (64 for LV-ViT-T/S/M, 128 for
    /// -L) before the patch projection (kernel = stride = patch / 2); 0 for the ViT family,
    /// whose patch embedding is one convolution.
    public var stemChannels: Int
    /// LV-ViT: the stem's convolutions are followed by BatchNorm (a checkpoint's
    /// `patch_embed.bn{k}`); false when an exporter folded each BatchNorm into its convolution,
    /// which then has a bias (`torch.onnx.export` in eval mode).
    public var stemBatchNorm: Bool
    /// LV-ViT's `skip_lam`: both residual branches are divided by it (2 for LV-ViT-S/M, 3 for
    /// -L); 1 for the ViT family.
    public var skipLam: Double
    /// LV-ViT's token-labelling head: prediction = head(class token) + 0.5 * the max over the
    /// patch tokens of `aux_head` (`return_dense=True`, every released LV-ViT checkpoint).
    public var auxHead: Bool

    public init(family: ModelFamily = .vit, imageSize: Int, patchSize: Int, inChannels: Int = 3, embedDim: Int, depth: Int,
                heads: Int, mlpHidden: Int, classes: Int, distilled: Bool, layerNormEps: Double = 1e-6,
                qkvBias: Bool = true, layerScale: Bool = false, prefixPositions: Bool = true,
                stemChannels: Int = 0, stemBatchNorm: Bool = false, skipLam: Double = 1, auxHead: Bool = false) {
        self.family = family
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.inChannels = inChannels
        self.embedDim = embedDim
        self.depth = depth
        self.heads = heads
        self.mlpHidden = mlpHidden
        self.classes = classes
        self.distilled = distilled
        self.layerNormEps = layerNormEps
        self.qkvBias = qkvBias
        self.layerScale = layerScale
        self.prefixPositions = prefixPositions
        self.stemChannels = stemChannels
        self.stemBatchNorm = stemBatchNorm
        self.skipLam = skipLam
        self.auxHead = auxHead
    }

    /// Image patches per side and in all (Np: 196 at 224 px with patch 16).
    public var patchesPerSide: Int { imageSize / patchSize }
    public var patchCount: Int { patchesPerSide * patchesPerSide }
    /// Class (and distillation) tokens, always computed.
    public var prefixTokens: Int { distilled ? 2 : 1 }
    /// Tokens entering every block: N = Np + 1 (or + 2).
    public var tokenCount: Int { patchCount + prefixTokens }
    public var headDim: Int { embedDim / heads }

    /// What the model is called in one word or two: "DeiT", "DeiT (distilled)", "DeiT-III".
    public var variant: String {
        switch family {
        case .vit:
            if layerScale || !prefixPositions { return "DeiT-III" + (distilled ? " (distilled)" : "") }
            return distilled ? "DeiT (distilled)" : "ViT / DeiT"
        case .lvvit:
            return "LV-ViT"
        }
    }

    public var description: String {
        var features: [String] = []
        if !qkvBias { features.append("no qkv bias") }
        if layerScale { features.append("layer scale") }
        if !prefixPositions { features.append("positions for patches only") }
        if family == .lvvit {
            features.append("conv stem \(stemChannels) (\(stemBatchNorm ? "BatchNorm" : "BatchNorm folded"))")
            features.append("skip_lam \(formatDouble(skipLam))")
            if auxHead { features.append("aux head") }
        }
        return "\(variant): image \(imageSize), patch \(patchSize) (\(patchCount) patches), "
            + "dim \(embedDim), depth \(depth), heads \(heads), mlp \(mlpHidden), classes \(classes), ln eps \(layerNormEps)"
            + features.map { ", " + $0 }.joined()
    }
}

extension ModelArchitecture {
    /// Every field within `Limits` and consistent with the others (patches tile the image,
    /// heads divide the width, the token count fits), so that nothing computed from it can
    /// overflow or size an absurd allocation. Recognisers and the JSON reader call this before
    /// anything is built from an architecture.
    public func validate() throws(ArchitectureError) {
        func check(_ limit: Limit, _ value: Int) throws(ArchitectureError) {
            do { try limit.check(value) } catch { throw .outOfRange(error.description) }
        }
        try check(Limits.imageSize, imageSize)
        try check(Limits.patchSize, patchSize)
        try check(Limits.channels, inChannels)
        try check(Limits.embedDim, embedDim)
        try check(Limits.depth, depth)
        try check(Limits.heads, heads)
        try check(Limits.mlpHidden, mlpHidden)
        try check(Limits.classes, classes)
        guard imageSize % patchSize == 0 else { throw .inconsistent("image size \(imageSize) is not a multiple of patch size \(patchSize)") }
        // imageSize and patchSize are bounded, so these products cannot overflow.
        try check(Limits.tokens, tokenCount)
        guard embedDim % heads == 0 else { throw .inconsistent("\(heads) heads do not divide dim \(embedDim)") }
        guard layerNormEps.isFinite, layerNormEps >= 0, layerNormEps < 1 else {
            throw .outOfRange("layer norm eps \(layerNormEps) is outside [0, 1)")
        }
        switch family {
        case .vit:
            guard stemChannels == 0, !stemBatchNorm, skipLam == 1, !auxHead else {
                throw .inconsistent("a ViT-family model has no convolutional stem, skip_lam or auxiliary head")
            }
        case .lvvit:
            // The stem's widths are bounded like the embedding's; its projection's kernel is
            // patch / 2 (the 7x7 convolution halves the image first).
            try check(Limits.embedDim, stemChannels)
            guard patchSize % 2 == 0 else { throw .inconsistent("LV-ViT's patch size \(patchSize) is not even (stride 2, then patch / 2)") }
            guard skipLam.isFinite, skipLam >= 1e-3, skipLam <= 1e3 else { throw .outOfRange("skip_lam \(skipLam) is outside [0.001, 1000]") }
            guard !distilled, !layerScale, prefixPositions else {
                throw .inconsistent("an LV-ViT has no distillation token, no LayerScale, and positions for the class token too")
            }
        }
    }
}

/// Why an architecture cannot be built.
public enum ArchitectureError: Error, Sendable, Equatable, CustomStringConvertible {
    case outOfRange(String)
    case inconsistent(String)

    public var description: String {
        switch self {
        case .outOfRange(let message), .inconsistent(let message): return message
        }
    }
}
