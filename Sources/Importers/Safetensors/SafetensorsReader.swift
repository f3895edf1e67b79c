#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
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
        try SafetensorsFile.refuseHoles(path: path, header: header)
    }

    /// Tensors at least this large must have data on disk (see `refuseHoles`).
    static let holeCheckBytes = 64 << 20

    /// A sparse file can declare a 4 GB tensor in a 4 KB file: its size is right, but the
    /// bytes are holes, and converting them would allocate by a claim no data backs. So every
    /// tensor of 64 MiB or more must have data somewhere in its range (`SEEK_DATA`); a tensor
    /// that is one hole is all zeros anyway, which no trained weight is. File systems without
    /// hole reporting say all bytes are data, so this never refuses a real file there.
    static func refuseHoles(path: String, header: SafetensorsHeader) throws(ImportError) {
        let large = header.entries.filter { $0.dataRange.count >= holeCheckBytes }
        guard !large.isEmpty else { return }
        guard let file = try? RegularFile.open(path) else { return }
        defer { close(file.descriptor) }
        for entry in large {
            let start = header.dataStart + entry.dataRange.lowerBound
            let dataAt = lseek(file.descriptor, off_t(start), 3 /* SEEK_DATA */)
            // -1 with ENXIO: no data at or after `start`; other errors: no hole support.
            let hole = dataAt < 0 ? errno == ENXIO : Int(dataAt) >= header.dataStart + entry.dataRange.upperBound
            if hole {
                throw .invalidTensor(file: displayName(path), tensor: entry.name.escapedForMessage,
                                     rule: "its \(entry.dataRange.count) bytes are a hole of a sparse file: no data is stored for it")
            }
        }
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
            throw .invalidTensor(file: displayName(path), tensor: entry.name.escapedForMessage,
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
            throw .invalidTensor(file: displayName(path), tensor: entry.name.escapedForMessage, rule: "dtype \(entry.dtype.rawValue) is not an index type (I64 or I32)")
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
