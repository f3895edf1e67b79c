import Bundle
import IR
import HDF5Importer
import Importers
import ModelDescription
import Passes
import ONNXImporter
import TorchImporter

/// A model file turned into the canonical IR, with what `inspect` needs to describe it.
public struct LoadedModel: Sendable {
    public var path: String
    public var format: ModelFormat
    /// Tensors as stored in the file (before renaming), for `inspect`.
    public var sourceTensors: [TensorSummary]
    public var sourceMetadata: [String: String]
    public var recognized: RecognizedModel
    public var graph: Graph
    /// Format-specific facts (`ONNX opset`, op histogram, HDF5 layout...), printed by `inspect`.
    public var details: [(String, String)]
    /// The schedule a file carries (a bundle), validated, with its stored graph (weights
    /// attached), which runs as it is.
    public var storedIdle: (schedule: IdleSchedule, graph: Graph)?
    /// A PyTorch checkpoint's other contents (optimizer, args, ...), for `inspect`.
    public var checkpoint: CheckpointContents?

    public var architecture: ModelArchitecture { recognized.architecture }
}

public struct TensorSummary: Sendable {
    public var name: String
    public var dtype: String
    public var shape: [Int]
    public var bytes: Int
}

public struct LoadOptions: Sendable {
    public var recognition: RecognitionOptions
    /// Which state dict of a PyTorch checkpoint to load (`--key`), when it holds several.
    public var checkpointKey: String?

    public init(recognition: RecognitionOptions = RecognitionOptions(), checkpointKey: String? = nil) {
        self.recognition = recognition
        self.checkpointKey = checkpointKey
    }
}

/// file -> importer -> weight set -> model description (recognition) -> dense IR graph.
public enum ModelLoader {
    public static func load(_ path: String, options: LoadOptions = LoadOptions()) throws(ImportError) -> LoadedModel {
        let format = try FormatDetection.detect(path: path)
        let file = displayName(path)
        var weights: WeightSet
        let summaries: [TensorSummary]
        var details: [(String, String)] = []
        var recognition = options.recognition
        var bundle: BundleInfo?
        var checkpoint: CheckpointContents?
        switch format {
        case .safetensors, .bundle:
            let reader = try SafetensorsFile(path: path)
            // A bundle's metadata is checked before any tensor is converted or recognised.
            if format == .bundle { bundle = try BundleReader.readMetadata(reader) }
            summaries = reader.entries.map {
                TensorSummary(name: $0.name, dtype: $0.dtype.rawValue, shape: $0.shape, bytes: $0.dataRange.count)
            }
            weights = try reader.weightSet(format: format)
        case .onnx:
            let imported = try ONNXImporter.load(path: path)
            summaries = imported.initializers.map { TensorSummary(name: $0.name, dtype: $0.dtype, shape: $0.shape, bytes: $0.bytes) }
            details += imported.details
            // The graph states heads and epsilon; the user's options still win.
            if recognition.heads == nil, let heads = imported.options.heads {
                recognition.heads = heads
                recognition.headsSource = "ONNX graph"
            }
            if recognition.layerNormEps == nil, let eps = imported.options.layerNormEps {
                recognition.layerNormEps = eps
                recognition.layerNormEpsSource = "ONNX graph"
            }
            if recognition.skipLam == nil, let skipLam = imported.options.skipLam {
                recognition.skipLam = skipLam
                recognition.skipLamSource = "ONNX graph"
            }
            weights = imported.weights
        case .hdf5:
            let imported = try HDF5Importer.load(path: path)
            summaries = imported.description.datasets.map {
                TensorSummary(name: String($0.path.dropFirst()), dtype: $0.sourceType.safetensorsName, shape: $0.shape, bytes: $0.logicalBytes)
            }
            details += imported.details
            weights = imported.weights
        case .pytorch:
            let imported = try TorchImporter.load(path: path, key: options.checkpointKey)
            summaries = imported.tensors.map { TensorSummary(name: $0.name, dtype: $0.dtype, shape: $0.shape, bytes: $0.bytes) }
            details += imported.details
            checkpoint = imported.contents
            weights = imported.weights
        }
        let config = try ModelConfigFile.load(nextTo: path)
        if config != nil { details.append((ModelConfigFile.fileName, "found next to the weights")) }
        var recognized = try ModelDescription.recognize(weights, options: recognition, config: config)
        let graph: Graph
        do {
            graph = try ModelDescription.buildGraph(recognized)
        } catch {
            throw .architecture(file: file, problems: ["cannot build the graph: \(error)"])
        }
        var storedIdle: (schedule: IdleSchedule, graph: Graph)?
        if let bundle {
            let stored = try BundleReader.resolve(bundle, file: path, recognized: recognized.architecture, dense: graph)
            if let schedule = bundle.schedule { storedIdle = (schedule, stored) }
            if let preprocessing = bundle.preprocessing, config?.preprocessing == nil { recognized.preprocessing = preprocessing }
            details += bundle.details
        }
        return LoadedModel(path: path, format: format, sourceTensors: summaries, sourceMetadata: weights.metadata,
                           recognized: recognized, graph: graph, details: details, storedIdle: storedIdle, checkpoint: checkpoint)
    }
}
