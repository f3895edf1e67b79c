import Dispatch
import Exporters
import IR
import Importers
import ModelDescription
import Passes

/// Where the `source` metadata comes from.
public enum BundleProvenance: Sendable {
    /// Already known: a bundle converted again keeps its original checkpoint's record.
    case recorded(BundleSource)
    /// The file the weights were imported from, hashed while the tensors are written.
    case hashing(path: String, format: ModelFormat)
}

/// Everything a bundle holds, before it is written.
public struct BundleContents: Sendable {
    public var architecture: ModelArchitecture
    /// Weights by canonical timm name; any order, any extra names are refused.
    public var tensors: [String: FloatTensor]
    /// nil (or no idle entries) for a dense bundle.
    public var schedule: IdleSchedule?
    public var dtype: OutputDType
    public var source: BundleProvenance
    /// `idlevit <version>`.
    public var producer: String
    /// How images are prepared for the model, stored so `run --image` uses it.
    public var preprocessing: Preprocessing

    public init(architecture: ModelArchitecture, tensors: [String: FloatTensor], schedule: IdleSchedule?,
                dtype: OutputDType, source: BundleProvenance, producer: String, preprocessing: Preprocessing) {
        self.architecture = architecture
        self.tensors = tensors
        self.schedule = schedule
        self.dtype = dtype
        self.source = source
        self.producer = producer
        self.preprocessing = preprocessing
    }
}

/// Writes `NAME.idlevit.safetensors` (DESIGN §5): the canonical timm tensors in state-dict
/// order, so `load_state_dict(strict=True)` takes the file as it is, and the metadata that
/// makes it self-describing.
///
/// Streaming and atomicity come from `SafetensorsWriter`: tensors are written straight from
/// the mapped input (F32) or converted one chunk at a time (F16/BF16), into a temporary file
/// renamed over the destination only when complete. Determinism: the bytes depend only on the
/// weights, architecture, schedule, dtype, source and producer; there is no timestamp, no
/// output name and no dictionary-order iteration anywhere in the header.
public enum BundleWriter {
    public static func write(_ contents: BundleContents, to path: String) throws(ExportError) {
        let ordered = try orderedTensors(contents)
        let items = ordered.map { SafetensorsWriter.Item(name: $0.name, tensor: $0.tensor, dtype: contents.dtype) }
        let graph = BundleGraph.text(try canonicalGraph(contents, ordered: ordered))
        switch contents.source {
        case .recorded(let source):
            try SafetensorsWriter.write(items, metadata: metadata(contents, source: source, graph: graph), to: path)
        case .hashing(let sourcePath, let format):
            // Hashing a 346 MB checkpoint takes longer than writing it: hash on another core
            // while the tensors stream out, then put the digest into the reserved header (a
            // SHA-256 hex string has a fixed length, so the header's length is known upfront).
            let hash = BackgroundHash(path: sourcePath)
            func source(_ sha256: String) -> BundleSource { BundleSource(file: displayName(sourcePath), format: format.rawValue, sha256: sha256) }
            let placeholder = metadata(contents, source: source(String(repeating: "0", count: 64)), graph: graph)
            try SafetensorsWriter.write(items, metadata: placeholder, to: path) { () throws(ExportError) in
                metadata(contents, source: source(try hash.digest()), graph: graph)
            }
        }
    }

    /// The metadata pairs in `BundleKey.all` order.
    static func metadata(_ contents: BundleContents, source: BundleSource, graph: String) -> [(String, String)] {
        let a = contents.architecture
        return [
            (BundleKey.format, BundleFormat.name),
            (BundleKey.formatVersion, String(BundleFormat.version)),
            (BundleKey.producer, contents.producer),
            (BundleKey.dtype, contents.dtype.rawValue),
            (BundleKey.source, JSONWriter.write(source.json)),
            (BundleKey.architecture, JSONWriter.write(GraphJSON.encode(a))),
            (BundleKey.idle, BundleGraph.idleMetadata(contents.schedule, architecture: a)),
            (BundleKey.preprocessing, JSONWriter.write(contents.preprocessing.json)),
            (BundleKey.graph, graph),
        ]
    }

    /// Tensors in timm state-dict order, each checked against the architecture.
    static func orderedTensors(_ contents: BundleContents) throws(ExportError) -> [(name: String, tensor: FloatTensor)] {
        let expected = ModelDescription.expectedTensors(contents.architecture)
        var ordered: [(name: String, tensor: FloatTensor)] = []
        for (name, shape) in expected.map({ ($0.name, $0.shape) }) {
            guard let tensor = contents.tensors[name] else { throw .invalidRequest("bundle: tensor '\(name)' is missing") }
            guard tensor.shape == shape else {
                throw .invalidRequest("bundle: tensor '\(name)' has shape \(describeShape(tensor.shape)), the architecture needs \(describeShape(shape))")
            }
            ordered.append((name, tensor))
        }
        let known = Set(expected.map(\.name))
        if let extra = contents.tensors.keys.sorted().first(where: { !known.contains($0) }) {
            throw .invalidRequest("bundle: tensor '\(extra)' is not part of a model with this architecture")
        }
        return ordered
    }

    /// The graph the reader will rebuild from the written tensors: recognised from the timm
    /// names exactly as a reader recognises them, with the bundle's dtype as source dtype.
    /// `ordered` is `orderedTensors(contents)`.
    static func canonicalGraph(_ contents: BundleContents, ordered: [(name: String, tensor: FloatTensor)]) throws(ExportError) -> Graph {
        let a = contents.architecture
        var weights = WeightSet(file: "bundle", format: .bundle,
                                metadata: [BundleKey.architecture: JSONWriter.write(GraphJSON.encode(a))])
        for (name, tensor) in ordered {
            weights.append(Weight(name: name, tensor: tensor, sourceType: contents.dtype.elementType))
        }
        do {
            let recognized = try ModelDescription.recognize(weights)
            guard recognized.architecture == a else {
                throw ExportError.invalidRequest("bundle: the weights read back as \(recognized.architecture), not \(a)")
            }
            return try BundleGraph.canonical(dense: try ModelDescription.buildGraph(recognized), schedule: contents.schedule)
        } catch let error as ExportError {
            throw error
        } catch {
            throw .invalidRequest("bundle: cannot build the graph to store: \(error)")
        }
    }
}

/// SHA-256 of a file computed on a global queue. The result is written once before the
/// semaphore is signalled and read only after waiting on it, which orders the two accesses;
/// hence the unchecked Sendable.
final class BackgroundHash: @unchecked Sendable {
    private let finished = DispatchSemaphore(value: 0)
    private var result: Result<String, TensorStorage.MapError>?
    private let path: String

    init(path: String) {
        self.path = path
        DispatchQueue.global(qos: .userInitiated).async { self.run() }
    }

    private func run() {
        do {
            result = .success(try SHA256.hex(ofFileAt: path))
        } catch {
            result = .failure(error)
        }
        finished.signal()
    }

    func digest() throws(ExportError) -> String {
        finished.wait()
        switch result! {
        case .success(let hex): return hex
        case .failure(let error):
            throw .cannotWrite(file: displayName(path), reason: "cannot hash the source for the bundle's provenance: \(error.message)")
        }
    }
}
