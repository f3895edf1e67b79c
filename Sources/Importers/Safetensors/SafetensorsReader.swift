import IR

/// A memory-mapped safetensors file. Opening costs O(header): the data section is mapped and
/// F32 tensors point straight into it; F16/BF16 tensors are widened to Float32 on request.
public struct SafetensorsFile: Sendable {
    public let path: String
    public let header: SafetensorsHeader
    public let storage: TensorStorage

    public init(path: String) throws(ImportError) {
        self.path = path
        let file = displayName(path)
        do {
            storage = try TensorStorage.map(path: path)
        } catch {
            throw .unreadable(file: file, reason: error.message)
        }
        let storage = self.storage
        header = try SafetensorsHeader.parse(file: file, fileSize: storage.byteCount) { storage.bytes($0) }
    }

    /// Entries in header (JSON) order.
    public var entries: [SafetensorsEntry] { header.entries }
    /// Entries in the order their bytes sit in the file: how state dicts and references are read.
    public var entriesInFileOrder: [SafetensorsEntry] { header.entries.sorted { $0.dataRange.lowerBound < $1.dataRange.lowerBound } }
    public var metadata: [String: String] { header.metadata }

    public func entry(named name: String) -> SafetensorsEntry? { header.entries.first { $0.name == name } }

    /// The tensor as Float32: a view into the map for aligned F32, a converted copy otherwise.
    public func floatTensor(_ entry: SafetensorsEntry) throws(ImportError) -> FloatTensor {
        guard let source = entry.dtype.floatSource else {
            throw .invalidTensor(file: displayName(path), tensor: entry.name,
                                 rule: "dtype \(entry.dtype.rawValue) cannot be read as weights (F32, F16 or BF16 expected)")
        }
        let bytes = self.bytes(of: entry)
        return NumericConversion.floatTensor(bytes, type: source, shape: entry.shape, storage: storage)
    }

    /// The entry's bytes in the map (no copy).
    func bytes(of entry: SafetensorsEntry) -> UnsafeRawBufferPointer {
        storage.bytes(header.dataStart + entry.dataRange.lowerBound ..< header.dataStart + entry.dataRange.upperBound)
    }

    /// An integer tensor (token indices in reference files) as Ints.
    public func integerValues(_ entry: SafetensorsEntry) throws(ImportError) -> [Int] {
        let bytes = self.bytes(of: entry)
        let count = entry.shape.elementCount
        switch entry.dtype {
        case .I64: return (0..<count).map { Int(bytes.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
        case .I32: return (0..<count).map { Int(bytes.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
        case .U8: return (0..<count).map { Int(bytes[$0]) }
        default:
            throw .invalidTensor(file: displayName(path), tensor: entry.name, rule: "dtype \(entry.dtype.rawValue) is not an index type (I64 or I32)")
        }
    }

    /// Every tensor as a weight, in file order.
    public func weightSet(format: ModelFormat = .safetensors) throws(ImportError) -> WeightSet {
        var set = WeightSet(file: path, format: format, metadata: metadata)
        for entry in entriesInFileOrder {
            if BatchNormCounter.matches(name: entry.name, isInteger: entry.dtype.isInteger, shape: entry.shape) {
                set.counters.append(entry.name)
                continue
            }
            set.append(Weight(name: entry.name, tensor: try floatTensor(entry), sourceType: entry.dtype.floatSource!))
        }
        return set
    }
}
