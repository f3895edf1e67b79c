import IR
import Importers

/// What a model family *is*, in one place: the tensor roles and their names per naming scheme
/// (`TensorRole`, `NamingScheme`), the architecture read from shapes (`ModelRecognizer`), the
/// dense graph (`buildGraph`), the activation names (`ActivationName`), and the block pattern
/// the IdleViT rewrite matches (`DenseBlock`, `IdleBlock`). Importers, passes, bundles,
/// verification and the command line go through it instead of spelling names out.
///
/// Adding a family means adding its tensor table, recogniser and builder here, and, where its
/// math differs, the IR ops it needs.
public enum ModelDescription {
    public static func recognize(_ weights: WeightSet, options: RecognitionOptions = RecognitionOptions(),
                                 config: ModelConfigFile? = nil) throws(ImportError) -> RecognizedModel {
        try ModelRecognizer.recognize(weights, options: options, config: config)
    }

    /// The dense graph of a recognised model.
    public static func buildGraph(_ model: RecognizedModel) throws(GraphError) -> Graph {
        switch model.architecture.family {
        case .vit: return try ViTGraphBuilder.build(model)
        case .lvvit: return try LVViTGraphBuilder.build(model)
        }
    }

    /// Every tensor of the architecture under its canonical (timm) name, in state-dict order.
    /// The architecture must be valid (`ModelArchitecture.validate`).
    public static func expectedTensors(_ a: ModelArchitecture) -> [ExpectedTensor] {
        switch a.family {
        case .vit: return ViTTensors.expected(a)
        case .lvvit: return LVViTTensors.expected(a)
        }
    }

    /// Learnable parameters: the elements of every expected tensor but buffers (BatchNorm's
    /// running statistics), as PyTorch's `parameters()` counts them.
    public static func parameterCount(_ a: ModelArchitecture) -> Int {
        expectedTensors(a).reduce(0) { $0 + ($1.role.isBuffer ? 0 : $1.shape.elementCount) }
    }

    /// timm's name for a published configuration with this geometry, if there is one
    /// (`deit_small_patch16_224`, `deit3_base_patch16_384`).
    public static func publishedName(_ a: ModelArchitecture) -> String? {
        if a.family == .lvvit { return LVViTRecognizer.publishedName(a) }
        guard a.family == .vit, a.patchSize == 16, a.depth == 12, a.headDim == 64, a.mlpHidden == 4 * a.embedDim, a.qkvBias,
              a.imageSize == 224 || a.imageSize == 384 else { return nil }
        let size: String
        switch a.embedDim {
        case 192: size = "tiny"
        case 384: size = "small"
        case 768: size = "base"
        default: return nil
        }
        let deit3 = a.layerScale && !a.prefixPositions
        guard deit3 || (!a.layerScale && a.prefixPositions) else { return nil }
        if deit3 && a.distilled { return nil }
        return (deit3 ? "deit3_" : "deit_") + size + (a.distilled ? "_distilled" : "") + "_patch16_\(a.imageSize)"
    }
}
