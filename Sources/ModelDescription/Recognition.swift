import IR
import Importers

/// What the user (or a config file) says that weights cannot.
public struct RecognitionOptions: Sendable {
    /// Attention heads; DeiT's head size 64 gives dim / 64 when nothing says otherwise.
    public var heads: Int?
    public var layerNormEps: Double?
    /// LV-ViT's residual divisor, when something other than the weights states it (an ONNX
    /// graph's Div).
    public var skipLam: Double?
    /// Where `heads`, `layerNormEps` and `skipLam` came from, for `inspect` ("--heads", "ONNX graph").
    public var headsSource = "--heads"
    public var layerNormEpsSource = "option"
    public var skipLamSource = "option"

    public init(heads: Int? = nil, layerNormEps: Double? = nil) {
        self.heads = heads
        self.layerNormEps = layerNormEps
    }
}

/// A checkpoint recognised as a model of some family: its architecture, its weights under
/// the canonical timm names in state-dict order (q, k, v fused into qkv where the source kept
/// them apart), and what else a config said.
public struct RecognizedModel: Sendable {
    public var architecture: ModelArchitecture
    public var weights: WeightSet
    /// The naming scheme the source used.
    public var scheme: String
    /// How images are prepared for it (config.json, a bundle, or the family's default).
    public var preprocessing: Preprocessing
    /// Class names from a config, by index.
    public var labels: [String]?
    /// Where heads, eps and preprocessing came from, for `inspect`.
    public var notes: [String]
}

/// Recognises a weight set as a model: picks the naming scheme that explains most tensors,
/// maps every tensor to its role, infers the architecture from shapes (DESIGN §2) and checks
/// every tensor against the family's table. Missing, unexpected and mis-shaped tensors are
/// all reported in one error.
public enum ModelRecognizer {
    public static func recognize(_ source: WeightSet, options: RecognitionOptions = RecognitionOptions(),
                                 config: ModelConfigFile? = nil) throws(ImportError) -> RecognizedModel {
        if LVViTRecognizer.claims(source) { return try LVViTRecognizer.recognize(source, options: options, config: config) }
        return try ViTRecognizer.recognize(source, options: options, config: config)
    }
}
