import IR
import Importers

/// Output element types for written checkpoints.
public enum OutputDType: String, Sendable, CaseIterable {
    case f32, f16, bf16

    public var elementType: ElementType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        }
    }
}

/// Writes a safetensors file from Float32 tensors, streaming: only one tensor's converted
/// bytes are held at a time beyond the (mapped) inputs. The data section starts on a 64-byte
/// boundary (the header is padded with spaces, as the format allows) so readers can map
/// tensors in place. Output is deterministic: tensors and metadata in the order given.
public enum SafetensorsWriter {
    public struct Item {
        public var name: String
        public var tensor: FloatTensor
        public var dtype: OutputDType

        public init(name: String, tensor: FloatTensor, dtype: OutputDType) {
            self.name = name
            self.tensor = tensor
            self.dtype = dtype
        }
    }

    public static func write(_ items: [Item], metadata: [(String, String)], to path: String) throws(ExportError) {
        try write(items, metadata: metadata, to: path) { metadata }
    }

    /// As `write`, with the metadata settled only once the data section is written: a bundle
    /// hashes its source on another core meanwhile. `metadata` holds the header's place and
    /// `finalMetadata` (called after the data) must pad to the same length, since the data
    /// offsets depend on it; a header that changed then overwrites the placeholder in place.
    public static func write(_ items: [Item], metadata: [(String, String)], to path: String,
                             finalMetadata: () throws(ExportError) -> [(String, String)]) throws(ExportError) {
        let placeholder = headerBytes(items, metadata: metadata)
        let file = try AtomicFile(destination: path)
        try file.write(placeholder)
        try writeData(items, to: file)
        let header = headerBytes(items, metadata: try finalMetadata())
        guard header.count == placeholder.count else {
            throw .invalidRequest("\(path): the final header (\(header.count) bytes) does not fit the \(placeholder.count) bytes reserved for it")
        }
        if header != placeholder { try file.write(header, at: 0) }
        try file.commit()
    }

    /// The data section, one tensor (and for F16/BF16 one chunk) at a time.
    static func writeData(_ items: [Item], to file: AtomicFile) throws(ExportError) {
        let chunk = 1 << 16
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: chunk * 4, alignment: 64)
        defer { scratch.deallocate() }
        for item in items {
            let source = item.tensor.pointer
            let count = item.tensor.count
            if item.dtype == .f32 {
                // Straight from the mapped input, a window at a time, so it never becomes resident.
                try item.tensor.storage.forEachWindow(of: UnsafeRawBufferPointer(start: source, count: count * 4)) { (part) throws(ExportError) in
                    try file.write(part)
                }
                continue
            }
            var start = 0
            while start < count {
                let n = min(chunk, count - start)
                let out = scratch.assumingMemoryBound(to: UInt16.self)
                if item.dtype == .f16 {
                    for i in 0..<n { out[i] = Float16(source[start + i]).bitPattern }
                } else {
                    for i in 0..<n { out[i] = NumericConversion.bfloat16Bits(source[start + i]) }
                }
                try file.write(UnsafeRawBufferPointer(start: scratch, count: n * 2))
                start += n
            }
        }
    }

    /// Length prefix plus the JSON header, padded with spaces to a 64-byte boundary.
    static func headerBytes(_ items: [Item], metadata: [(String, String)]) -> [UInt8] {
        headerBytes(items.map { HeaderEntry(name: $0.name, dtype: $0.dtype.elementType, shape: $0.tensor.shape) }, metadata: metadata)
    }

    /// One tensor's header entry; tensors are laid out in the order given, back to back.
    public struct HeaderEntry {
        public var name: String
        public var dtype: ElementType
        public var shape: [Int]

        public init(name: String, dtype: ElementType, shape: [Int]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
        }
    }

    /// The header for tensors whose bytes a caller streams itself, in this order.
    public static func headerBytes(_ entries: [HeaderEntry], metadata: [(String, String)]) -> [UInt8] {
        var pairs: [(key: String, value: JSONValue)] = []
        if !metadata.isEmpty {
            pairs.append(("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) })))
        }
        var offset = 0
        for entry in entries {
            let bytes = entry.shape.elementCount * entry.dtype.size
            pairs.append((entry.name, .object([
                ("dtype", .string(entry.dtype.safetensorsName)),
                ("shape", .array(entry.shape.map(JSONValue.int))),
                ("data_offsets", .array([.int(offset), .int(offset + bytes)])),
            ])))
            offset += bytes
        }
        var json = Array(JSONWriter.write(.object(pairs)).utf8)
        let padding = (64 - (8 + json.count) % 64) % 64
        json += Array(repeating: UInt8(ascii: " "), count: padding)
        var out: [UInt8] = []
        out.reserveCapacity(8 + json.count)
        var length = UInt64(json.count)
        for _ in 0..<8 {
            out.append(UInt8(truncatingIfNeeded: length))
            length >>= 8
        }
        return out + json
    }
}
