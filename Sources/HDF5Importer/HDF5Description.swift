import IR
import Importers

/// What `idlevit-hdf5-reader` found in an HDF5 file, passed back to idlevit as JSON in the
/// `__metadata__` of the safetensors file it writes. Shared by both sides so the protocol
/// has a single definition.
public struct HDF5Description: Sendable, Equatable {
    /// The single top-level group that wrapped every dataset (`state_dict`), if one was stripped.
    public var topGroup: String?
    public var datasets: [HDF5DatasetInfo]
    /// String (and scalar number) attributes of the root and the top group, in file order.
    public var attributes: [HDF5Attribute]
    /// Attributes that are not strings or scalars, by name, for `inspect`.
    public var skippedAttributes: [String]
    /// The libhdf5 version that read the file.
    public var library: String

    public init(topGroup: String?, datasets: [HDF5DatasetInfo], attributes: [HDF5Attribute],
                skippedAttributes: [String], library: String) {
        self.topGroup = topGroup
        self.datasets = datasets
        self.attributes = attributes
        self.skippedAttributes = skippedAttributes
        self.library = library
    }
}

public struct HDF5Attribute: Sendable, Equatable {
    /// The group holding it: "/" for the root, else the top group's name.
    public var owner: String
    public var name: String
    public var value: String

    public init(owner: String, name: String, value: String) {
        self.owner = owner
        self.name = name
        self.value = value
    }
}

/// One dataset: where it is in the file and the state-dict tensor it becomes.
public struct HDF5DatasetInfo: Sendable, Equatable {
    /// State-dict name: path components joined with dots, top group stripped.
    public var name: String
    /// Path in the file, as `inspect` shows it.
    public var path: String
    /// The float type stored in the file (f16, f32 or f64).
    public var sourceType: ElementType
    public var shape: [Int]
    /// `contiguous`, `chunked` or `compact`.
    public var storage: String
    /// Filter pipeline in order, e.g. `shuffle`, `gzip 4`.
    public var filters: [String]
    /// Bytes the dataset occupies in the file (after compression).
    public var storedBytes: Int

    public init(name: String, path: String, sourceType: ElementType, shape: [Int], storage: String,
                filters: [String], storedBytes: Int) {
        self.name = name
        self.path = path
        self.sourceType = sourceType
        self.shape = shape
        self.storage = storage
        self.filters = filters
        self.storedBytes = storedBytes
    }

    /// Bytes of the tensor as stored type, uncompressed.
    public var logicalBytes: Int { shape.reduce(1, *) * sourceType.size }
}

/// The contract between idlevit and its HDF5 reader process.
public enum HDF5ReaderProtocol {
    /// The executable's file name, looked for next to the running program.
    public static let executableName = "idlevit-hdf5-reader"
    /// Environment variable naming the reader explicitly (tests, unusual installs).
    public static let executableVariable = "IDLEVIT_HDF5_READER"
    /// Environment variable overriding the reader's time limit, in seconds.
    public static let timeoutVariable = "IDLEVIT_HDF5_TIMEOUT"
    /// Appended to the output path: the empty file the reader makes once every dataset is
    /// listed and checked, so idlevit can give the structure walk a short deadline.
    public static let plannedSuffix = ".planned"
    /// `__metadata__` key holding the description JSON in the reader's output.
    public static let descriptionKey = "idlevit.hdf5"

    /// Exit statuses of the reader. Anything else (or a signal) means it failed unexpectedly.
    public static let exitRejected: Int32 = 3
    public static let exitCannotWrite: Int32 = 4
    public static let exitUsage: Int32 = 5

    /// The reader's one-line error: `file<TAB>rule` or `dataset<TAB>name<TAB>rule`.
    public static func rejectionLine(dataset: String?, rule: String) -> String {
        if let dataset { return "dataset\t\(dataset.escapedForMessage)\t\(rule.escapedForMessage)" }
        return "file\t\(rule.escapedForMessage)"
    }
}

// MARK: - JSON form

extension HDF5Description {
    public var json: JSONValue {
        var pairs: [(key: String, value: JSONValue)] = []
        if let topGroup { pairs.append(("top_group", .string(topGroup))) }
        pairs.append(("library", .string(library)))
        pairs.append(("attributes", .array(attributes.map {
            .object([("owner", .string($0.owner)), ("name", .string($0.name)), ("value", .string($0.value))])
        })))
        pairs.append(("skipped_attributes", .array(skippedAttributes.map(JSONValue.string))))
        pairs.append(("datasets", .array(datasets.map { info in
            .object([
                ("name", .string(info.name)), ("path", .string(info.path)),
                ("dtype", .string(info.sourceType.rawValue)), ("shape", .array(info.shape.map(JSONValue.int))),
                ("storage", .string(info.storage)), ("filters", .array(info.filters.map(JSONValue.string))),
                ("stored_bytes", .int(info.storedBytes)),
            ])
        })))
        return .object(pairs)
    }

    /// Parses the reader's JSON; nil if it is not what this idlevit's reader writes.
    public init?(json: JSONValue) {
        guard let library = json["library"]?.stringValue,
              let attributeValues = json["attributes"]?.arrayValue,
              let skipped = json["skipped_attributes"]?.arrayValue,
              let datasetValues = json["datasets"]?.arrayValue else { return nil }
        var attributes: [HDF5Attribute] = []
        for value in attributeValues {
            guard let owner = value["owner"]?.stringValue, let name = value["name"]?.stringValue,
                  let text = value["value"]?.stringValue else { return nil }
            attributes.append(HDF5Attribute(owner: owner, name: name, value: text))
        }
        var datasets: [HDF5DatasetInfo] = []
        for value in datasetValues {
            guard let name = value["name"]?.stringValue, let path = value["path"]?.stringValue,
                  let dtype = value["dtype"]?.stringValue.flatMap(ElementType.init(rawValue:)),
                  let shape = value["shape"]?.arrayValue?.compactMap(\.intValue),
                  let storage = value["storage"]?.stringValue,
                  let filters = value["filters"]?.arrayValue?.compactMap(\.stringValue),
                  let stored = value["stored_bytes"]?.intValue, stored >= 0 else { return nil }
            // The reader checked the shape; idlevit checks again what crosses the process
            // boundary before anything multiplies it (`logicalBytes`).
            guard shape.count == value["shape"]?.arrayValue?.count, Limits.rank.contains(shape.count),
                  let count = try? Checked.elementCount(shape, "shape"), Limits.elementCount.contains(count) else { return nil }
            datasets.append(HDF5DatasetInfo(name: name, path: path, sourceType: dtype, shape: shape,
                                            storage: storage, filters: filters, storedBytes: stored))
        }
        self.init(topGroup: json["top_group"]?.stringValue, datasets: datasets, attributes: attributes,
                  skippedAttributes: skipped.compactMap(\.stringValue), library: library)
    }
}
