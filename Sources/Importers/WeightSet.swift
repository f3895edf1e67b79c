import IR

/// One tensor as an importer found it, already converted to Float32.
public struct Weight: Sendable, Named {
    public var name: String
    public var tensor: FloatTensor
    /// The element type stored in the file.
    public var sourceType: ElementType

    public init(name: String, tensor: FloatTensor, sourceType: ElementType) {
        self.name = name
        self.tensor = tensor
        self.sourceType = sourceType
    }

    public var shape: [Int] { tensor.shape }
}

/// What every importer hands to the DeiT recogniser: named tensors in file order, plus
/// string metadata (safetensors `__metadata__`, HDF5 attributes, ONNX metadata_props).
public struct WeightSet: Sendable {
    public var file: String
    public var format: ModelFormat
    public private(set) var weights = NamedList<Weight>()
    public var metadata: [String: String] = [:]
    /// BatchNorm's `num_batches_tracked` counters the file holds (integer scalars, not weights:
    /// only training reads them). The model description decides whether they belong to the
    /// model; the weights never include them.
    public var counters: [String] = []

    public init(file: String, format: ModelFormat, weights: [Weight] = [], metadata: [String: String] = [:]) {
        self.file = file
        self.format = format
        self.metadata = metadata
        self.weights = NamedList(weights)
    }

    /// Adds a weight, or replaces the one of the same name in place.
    public mutating func append(_ weight: Weight) { weights.append(weight) }

    public subscript(name: String) -> Weight? { weights[named: name] }
    public var names: [String] { weights.names }
    public var parameterCount: Int { weights.reduce(0) { $0 + $1.tensor.count } }
}

/// The kinds of model file idlevit reads, detected from content.
public enum ModelFormat: String, Sendable, CaseIterable {
    case safetensors
    case bundle = "idlevit-bundle"
    case onnx
    case hdf5
    case pytorch

    public var displayName: String {
        switch self {
        case .safetensors: return "safetensors"
        case .bundle: return "IdleViT bundle (safetensors)"
        case .onnx: return "ONNX"
        case .hdf5: return "HDF5"
        case .pytorch: return "PyTorch (torch.save)"
        }
    }
}

/// BatchNorm's training counter: `<module>.num_batches_tracked`, an integer scalar that
/// `state_dict()` saves with every BatchNorm (LV-ViT's stem). Importers set such tensors aside
/// in `WeightSet.counters` rather than refusing their integer dtype.
public enum BatchNormCounter {
    public static let suffix = ".num_batches_tracked"

    /// Whether a tensor with this name, integer dtype and shape is such a counter.
    public static func matches(name: String, isInteger: Bool, shape: [Int]) -> Bool {
        isInteger && shape.allSatisfy { $0 == 1 } && shape.count <= 1 && name.hasSuffix(suffix) && name.utf8.count > suffix.utf8.count
    }
}
