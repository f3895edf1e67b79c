import IR
import Importers
import ModelDescription
import Passes

/// The `__metadata__` keys of an IdleViT bundle (DESIGN §5, `Schemas/bundle.schema.json`), in
/// the order they are written. `format` comes first so format detection finds it in the first
/// kilobyte; `graph`, the longest, comes last.
public enum BundleKey {
    public static let format = "format"
    public static let formatVersion = "format_version"
    public static let producer = "producer"
    public static let dtype = "dtype"
    public static let source = "source"
    public static let architecture = "architecture"
    public static let idle = "idle"
    /// How images are prepared for the model (optional: bundles of the first release lack it).
    public static let preprocessing = "preprocessing"
    public static let graph = "graph"

    /// The keys every bundle has.
    public static let all = [format, formatVersion, producer, dtype, source, architecture, idle, graph]
}

public enum BundleFormat {
    /// The value of `format`; FormatDetection looks for exactly `"format":"idlevit-bundle"`.
    public static let name = "idlevit-bundle"
    public static let version = 1
    /// What the format name sounds like in messages.
    public static let displayName = "IdleViT bundle"
}

/// Where a bundle's weights came from: the checkpoint a user converted, never an intermediate
/// bundle (converting a bundle again keeps its `source`, so provenance survives re-conversion).
public struct BundleSource: Sendable, Equatable {
    public var file: String
    /// A `ModelFormat` raw value: safetensors, onnx, hdf5, pytorch (or idlevit-bundle).
    public var format: String
    /// Lower-case hex SHA-256 of the source file's bytes.
    public var sha256: String

    public init(file: String, format: String, sha256: String) {
        self.file = file
        self.format = format
        self.sha256 = sha256
    }

    public var json: JSONValue {
        .object([("file", .string(file)), ("format", .string(format)), ("sha256", .string(sha256))])
    }

    /// Reads the `source` metadata value; nil with the reason when it is malformed.
    public static func decode(_ text: String) -> Result<BundleSource, BundleMetadataProblem> {
        guard let json = try? JSONParser.parse(text), json.objectPairs != nil else { return .failure(.init("is not a JSON object")) }
        guard let file = json["file"]?.stringValue, !file.isEmpty else { return .failure(.init("needs a non-empty string 'file'")) }
        guard let format = json["format"]?.stringValue, ModelFormat(rawValue: format) != nil else {
            return .failure(.init("'format' must be one of \(ModelFormat.allCases.map(\.rawValue).joined(separator: ", "))"))
        }
        guard let sha = json["sha256"]?.stringValue, sha.utf8.count == 64,
              sha.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }) else {
            return .failure(.init("'sha256' must be 64 lower-case hex digits"))
        }
        return .success(BundleSource(file: file, format: format, sha256: sha))
    }
}

/// A reason a metadata value is malformed, for the reader to put behind the file and key.
public struct BundleMetadataProblem: Error, Sendable {
    public var message: String
    init(_ message: String) { self.message = message }
}

/// The graph a bundle stores, and that its reader rebuilds to compare: the dense DeiT graph
/// built from the canonical timm weights (whatever importer read the original), rewritten
/// with the schedule when the schedule has idle entries. Rebuilding instead of storing the
/// importer's graph is what makes bundles of one model from safetensors, ONNX and HDF5 equal.
public enum BundleGraph {
    /// A schedule with no idle entries is a dense model: no rewrite, and `idle` says dense.
    public static func normalized(_ schedule: IdleSchedule?) -> IdleSchedule? {
        guard let schedule, schedule.kept.contains(where: { $0 != nil }) else { return nil }
        return schedule
    }

    /// The `idle` value: the schedule's encoding, or all-null kept counts for a dense bundle.
    public static func idleMetadata(_ schedule: IdleSchedule?, architecture: ModelArchitecture) -> String {
        IdleMetadata.encode(normalized(schedule) ?? IdleSchedule(kept: Array(repeating: nil, count: architecture.depth),
                                                                 patchCount: architecture.patchCount))
    }

    /// `dense` must come from `ModelDescription.buildGraph` over timm-named weights.
    public static func canonical(dense: Graph, schedule: IdleSchedule?) throws(BundleMetadataProblem) -> Graph {
        var graph = dense
        // Naming describes the checkpoint a graph was imported from; a bundle is always timm.
        graph.metadata = ["naming": NamingScheme.timm.name]
        guard let schedule = normalized(schedule) else { return graph }
        do {
            return try PassPipeline([IdleBlockRewrite(schedule: schedule)]).run(graph)
        } catch {
            throw BundleMetadataProblem("the IdleViT rewrite failed: \(error)")
        }
    }

    /// Compact JSON text of a graph, as stored under `graph`.
    public static func text(_ graph: Graph) -> String { JSONWriter.write(GraphJSON.encode(graph)) }
}
