import IR
import Importers
import ModelDescription
import Passes

/// What the user asked for on top of the file: how to recognise it and how to make it idle.
public struct ModelRequest: Sendable {
    public var path: String
    public var heads: Int?
    public var keepRatio: Double?
    public var idleLayers: ClosedRange<Int>?
    /// One entry per layer, nil = dense.
    public var keptTokens: [Int?]?
    /// The state dict to load from a PyTorch checkpoint that holds several (`--key`).
    public var key: String?
    /// LV-ViT's residual divisor (`--skip-lam`), which its weights do not state.
    public var skipLam: Double?

    public init(path: String, heads: Int? = nil, keepRatio: Double? = nil, idleLayers: ClosedRange<Int>? = nil, keptTokens: [Int?]? = nil,
                key: String? = nil) {
        self.path = path
        self.heads = heads
        self.keepRatio = keepRatio
        self.idleLayers = idleLayers
        self.keptTokens = keptTokens
        self.key = key
    }

    public var asksForIdle: Bool { keepRatio != nil || idleLayers != nil || keptTokens != nil }
}

/// A model loaded and, when asked, rewritten to IdleViT: the graph every command runs.
public struct PreparedModel: Sendable {
    public var loaded: LoadedModel
    public var graph: Graph
    public var schedule: IdleSchedule?

    public var architecture: ModelArchitecture { loaded.recognized.architecture }
    /// How images are prepared for this model: config.json, the bundle, or the family default.
    public var preprocessing: Preprocessing { loaded.recognized.preprocessing }
    /// Class names from the model's config, if it gave them.
    public var labels: [String]? { loaded.recognized.labels }
    /// timm's name for a published configuration (`deit_small_patch16_224`), else the variant.
    public var modelName: String { ModelDescription.publishedName(architecture) ?? architecture.variant }
}

public enum SessionError: Error, CustomStringConvertible {
    case load(ImportError)
    case schedule(ScheduleError)
    case pass(String)
    case input(String)
    /// Options that contradict each other.
    case options(String)

    public var description: String {
        switch self {
        case .load(let error): return error.description
        case .schedule(let error): return error.description
        case .pass(let message): return message
        case .input(let message): return message
        case .options(let message): return message
        }
    }
}

public enum Session {
    /// file -> importer -> IR -> (IdleBlockRewrite) -> graph to run.
    public static func prepare(_ request: ModelRequest) throws(SessionError) -> PreparedModel {
        if request.keptTokens != nil, request.keepRatio != nil || request.idleLayers != nil {
            throw .options("--kept-tokens cannot be combined with --keep-ratio or --idle-layers")
        }
        if request.keptTokens == nil, request.idleLayers != nil, request.keepRatio == nil {
            throw .options("--idle-layers needs --keep-ratio")
        }
        let loaded: LoadedModel
        do {
            var recognition = RecognitionOptions(heads: request.heads)
            recognition.skipLam = request.skipLam
            recognition.skipLamSource = "--skip-lam"
            loaded = try ModelLoader.load(request.path, options: LoadOptions(recognition: recognition, checkpointKey: request.key))
        } catch {
            throw .load(error)
        }
        if let key = request.key, loaded.format != .pytorch {
            throw .options("--key '\(key.escapedForMessage)' chooses a state dict in a PyTorch checkpoint; \(displayName(request.path)) is \(loaded.format.displayName)")
        }
        let a = loaded.recognized.architecture
        var schedule: IdleSchedule?
        do throws(ScheduleError) {
            if let kept = request.keptTokens {
                schedule = try IdleSchedule.explicit(kept, depth: a.depth, patchCount: a.patchCount)
            } else if let r = request.keepRatio {
                schedule = try IdleSchedule.standard(depth: a.depth, patchCount: a.patchCount, keepRatio: r, idleLayers: request.idleLayers)
            }
        } catch {
            throw .schedule(error)
        }
        var graph = loaded.graph
        if schedule == nil, let stored = loaded.storedIdle {
            // A bundle's own schedule, already validated and applied by the loader; flags override it.
            (schedule, graph) = stored
        } else if let schedule {
            do {
                graph = try PassPipeline([IdleBlockRewrite(schedule: schedule)]).run(graph)
            } catch let error as ScheduleError {
                throw .schedule(error)
            } catch {
                throw .pass("\(error)")
            }
        }
        return PreparedModel(loaded: loaded, graph: graph, schedule: schedule)
    }

    /// Reads the image batch from an input safetensors file: the tensor `pixel_values`, or the
    /// only tensor in the file.
    public static func loadInput(path: String, for architecture: ModelArchitecture) throws(SessionError) -> FloatTensor {
        try openInput(path: path, for: architecture).tensor()
    }

    /// The input batch's entry, its shape checked against the model, not yet converted: the
    /// caller checks `batch` against its memory budget before `tensor()` allocates anything.
    public static func openInput(path: String, for architecture: ModelArchitecture) throws(SessionError) -> InputFile {
        let file: SafetensorsFile
        do { file = try SafetensorsFile(path: path) } catch { throw .load(error) }
        let name = displayName(path)
        let inputName = ActivationName.pixelValues.name
        guard let entry = file.entry(named: inputName) ?? (file.entries.count == 1 ? file.entries[0] : nil) else {
            let found = file.entries.prefix(10).map { $0.name.escapedForMessage }.joined(separator: ", ")
            throw .input("\(name): no tensor '\(inputName)' (found \(file.entries.isEmpty ? "no tensors" : found)\(file.entries.count > 10 ? ", ..." : ""))")
        }
        let expected = [architecture.inChannels, architecture.imageSize, architecture.imageSize]
        guard entry.shape.count == 4, Array(entry.shape.dropFirst()) == expected, entry.shape[0] > 0 else {
            throw .input("\(name): tensor '\(entry.name.escapedForMessage)' has shape \(describeShape(entry.shape)), expected [B, \(expected.map(String.init).joined(separator: ", "))]")
        }
        do { try Limits.batch.check(entry.shape[0], "\(name): the batch of '\(entry.name.escapedForMessage)'") } catch {
            throw .input(error.description)
        }
        return InputFile(file: file, entry: entry)
    }
}

/// An input batch whose header has been checked and whose tensor is read on demand.
public struct InputFile: Sendable {
    public let file: SafetensorsFile
    public let entry: SafetensorsEntry
    /// Images in the batch (the first extent).
    public var batch: Int { entry.shape[0] }

    /// The pixels as Float32 (a view into the map for aligned F32, a converted copy otherwise).
    public func tensor() throws(SessionError) -> FloatTensor {
        do { return try file.floatTensor(entry) } catch { throw .load(error) }
    }
}
