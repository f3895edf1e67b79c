/// The DeiT hyper-parameters a graph was built from, as recognised from a checkpoint.
public struct DeiTArchitecture: Hashable, Sendable, Codable, CustomStringConvertible {
    public var imageSize: Int
    public var patchSize: Int
    public var inChannels: Int
    public var embedDim: Int
    public var depth: Int
    public var heads: Int
    public var mlpHidden: Int
    public var classes: Int
    public var distilled: Bool
    public var layerNormEps: Double

    public init(imageSize: Int, patchSize: Int, inChannels: Int = 3, embedDim: Int, depth: Int, heads: Int,
                mlpHidden: Int, classes: Int, distilled: Bool, layerNormEps: Double = 1e-6) {
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
    }

    /// Image patches per side and in all (Np: 196 at 224 px with patch 16).
    public var patchesPerSide: Int { imageSize / patchSize }
    public var patchCount: Int { patchesPerSide * patchesPerSide }
    /// Class (and distillation) tokens, always computed.
    public var prefixTokens: Int { distilled ? 2 : 1 }
    /// Tokens entering every block: N = Np + 1 (or + 2).
    public var tokenCount: Int { patchCount + prefixTokens }
    public var headDim: Int { embedDim / heads }

    /// Learnable parameters of the model.
    public var parameterCount: Int {
        let c = embedDim
        let patch = c * inChannels * patchSize * patchSize + c
        let tokens = c * prefixTokens + tokenCount * c
        let block = 2 * c + (3 * c * c + 3 * c) + (c * c + c) + 2 * c + (mlpHidden * c + mlpHidden) + (c * mlpHidden + c)
        let heads = (c * classes + classes) * (distilled ? 2 : 1)
        return patch + tokens + depth * block + 2 * c + heads
    }

    /// A name when the geometry is a published DeiT config.
    public var familyName: String? {
        guard imageSize == 224, patchSize == 16, depth == 12, headDim == 64, mlpHidden == 4 * embedDim else { return nil }
        let base: String
        switch embedDim {
        case 192: base = "deit_tiny"
        case 384: base = "deit_small"
        case 768: base = "deit_base"
        default: return nil
        }
        return base + (distilled ? "_distilled" : "") + "_patch16_224"
    }

    public var description: String {
        "DeiT\(distilled ? " (distilled)" : ""): image \(imageSize), patch \(patchSize) (\(patchCount) patches), "
            + "dim \(embedDim), depth \(depth), heads \(heads), mlp \(mlpHidden), classes \(classes), ln eps \(layerNormEps)"
    }
}
