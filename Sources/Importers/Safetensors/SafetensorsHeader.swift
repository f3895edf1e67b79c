import IR

/// The dtypes of the safetensors specification.
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64

    public var size: Int {
        switch self {
        case .BOOL, .U8, .I8, .F8_E5M2, .F8_E4M3: return 1
        case .I16, .U16, .F16, .BF16: return 2
        case .I32, .U32, .F32: return 4
        case .F64, .I64, .U64: return 8
        }
    }

    /// The IR element type a tensor converts from, when we can read it as floats.
    public var floatSource: ElementType? {
        switch self {
        case .F32: return .f32
        case .F16: return .f16
        case .BF16: return .bf16
        default: return nil
        }
    }

    public var isInteger: Bool {
        switch self {
        case .U8, .I8, .I16, .U16, .I32, .U32, .I64, .U64: return true
        default: return false
        }
    }
}

/// One tensor entry of a safetensors header.
public struct SafetensorsEntry: Sendable, Equatable {
    public var name: String
    public var dtype: SafetensorsDType
    public var shape: [Int]
    /// Byte range relative to the start of the data section.
    public var dataRange: Range<Int>
}

/// A parsed and fully validated safetensors header.
///
/// Rules (DESIGN §2), each checked before any tensor byte is trusted: the file holds at
/// least the 8-byte length; the header fits in the file and is at most 100 MB; it is UTF-8
/// JSON, an object without duplicate keys; `__metadata__` maps strings to strings; every
/// entry has a known dtype, a shape of non-negative integers whose product does not
/// overflow, and `data_offsets` [begin, end) with begin <= end inside the data section and
/// end - begin == product(shape) x dtype size; sorted by offset, the entries tile the data
/// section exactly: no overlaps, no holes, nothing after the last tensor.
public struct SafetensorsHeader: Sendable {
    public static let maximumHeaderBytes = 100_000_000

    public var entries: [SafetensorsEntry]
    public var metadata: [String: String]
    /// Absolute file offset where the data section starts (8 + header length).
    public var dataStart: Int
    public var dataLength: Int

    /// Reads and validates the header of a file of `fileSize` bytes, whose bytes `read` gives.
    public static func parse(file: String, fileSize: Int, read: (Range<Int>) -> UnsafeRawBufferPointer) throws(ImportError) -> SafetensorsHeader {
        func invalid(_ rule: String) -> ImportError { .invalidFile(file: file, format: "safetensors", rule: rule) }
        guard fileSize > 0 else { throw invalid("the file is empty") }
        let head = read(0..<min(fileSize, 64))
        if head.starts(with: Array("version https://git-lfs".utf8)) {
            throw invalid("this is a Git LFS pointer file, not the weights: run `git lfs pull` to fetch the real file")
        }
        guard fileSize >= 8 else { throw invalid("the file has \(fileSize) bytes, fewer than the 8-byte header length") }
        var declared: UInt64 = 0
        for i in 0..<8 { declared |= UInt64(head[i]) << (8 * UInt64(i)) }
        guard declared <= UInt64(maximumHeaderBytes) else {
            throw invalid("declared header length \(declared) bytes exceeds the 100 MB limit")
        }
        let headerLength = Int(declared)
        guard headerLength <= fileSize - 8 else {
            throw invalid("declared header length \(headerLength) runs past the end of the file (\(fileSize - 8) bytes after the length)")
        }
        guard headerLength >= 2 else { throw invalid("header of \(headerLength) bytes cannot hold a JSON object") }
        let headerBytes = Array(read(8..<8 + headerLength))
        guard String(validating: headerBytes, as: UTF8.self) != nil else { throw invalid("header is not valid UTF-8") }
        let json: JSONValue
        do {
            // One entry per tensor plus __metadata__: stop parsing as soon as there are more.
            json = try JSONParser.parse(headerBytes, maximumMembers: Limits.tensorCount.maximum + 1)
        } catch {
            throw invalid("header is not valid JSON: \(error)")
        }
        guard let pairs = json.objectPairs else { throw invalid("header is JSON but not an object") }
        // The parser stopped at the limit plus one entry for __metadata__; without that entry,
        // the one over is a tensor too many.
        let tensorCount = pairs.count - (pairs.contains { $0.key == "__metadata__" } ? 1 : 0)
        guard tensorCount <= Limits.tensorCount.maximum else {
            throw invalid("header lists \(tensorCount) tensors, over the limit of \(Limits.tensorCount.maximum)")
        }

        let dataStart = 8 + headerLength
        let dataLength = fileSize - dataStart
        var entries: [SafetensorsEntry] = []
        var metadata: [String: String] = [:]
        for (name, value) in pairs {
            if name == "__metadata__" {
                guard let items = value.objectPairs else { throw invalid("__metadata__ is not an object") }
                for item in items {
                    guard item.key.utf8.count <= Limits.nameBytes.maximum else {
                        throw invalid("a __metadata__ key of \(item.key.utf8.count) bytes is over the limit of \(Limits.nameBytes.maximum)")
                    }
                    guard let text = item.value.stringValue else { throw invalid("__metadata__ key '\(item.key.escapedForMessage)' is not a string") }
                    metadata[item.key] = text
                }
                continue
            }
            guard name.utf8.count <= Limits.nameBytes.maximum else {
                throw invalid("a tensor name of \(name.utf8.count) bytes is over the limit of \(Limits.nameBytes.maximum)")
            }
            entries.append(try entry(file: file, name: name, value: value, dataLength: dataLength))
        }

        // Tiling: sorted by begin, each tensor starts where the previous ended.
        let sorted = entries.sorted { ($0.dataRange.lowerBound, $0.dataRange.upperBound) < ($1.dataRange.lowerBound, $1.dataRange.upperBound) }
        var cursor = 0
        var previous: String?
        for entry in sorted {
            if entry.dataRange.lowerBound < cursor {
                throw ImportError.invalidTensor(file: file, tensor: entry.name.escapedForMessage,
                    rule: "data_offsets [\(entry.dataRange.lowerBound), \(entry.dataRange.upperBound)) overlap tensor '\((previous ?? "").escapedForMessage)' which ends at \(cursor)")
            }
            if entry.dataRange.lowerBound > cursor {
                throw ImportError.invalidTensor(file: file, tensor: entry.name.escapedForMessage,
                    rule: "hole in the data section: bytes [\(cursor), \(entry.dataRange.lowerBound)) belong to no tensor")
            }
            cursor = entry.dataRange.upperBound
            previous = entry.name
        }
        if cursor != dataLength {
            throw invalid("hole in the data section: bytes [\(cursor), \(dataLength)) after the last tensor belong to no tensor")
        }
        return SafetensorsHeader(entries: entries, metadata: metadata, dataStart: dataStart, dataLength: dataLength)
    }

    private static func entry(file: String, name: String, value: JSONValue, dataLength: Int) throws(ImportError) -> SafetensorsEntry {
        func bad(_ rule: String) -> ImportError { .invalidTensor(file: file, tensor: name.escapedForMessage, rule: rule) }
        guard value.objectPairs != nil else { throw bad("entry is not an object") }
        guard let dtypeName = value["dtype"]?.stringValue else { throw bad("missing 'dtype' string") }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw bad("unknown dtype '\(String(dtypeName.prefix(64)).escapedForMessage)' (known: \(SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard let dims = value["shape"]?.arrayValue else { throw bad("missing 'shape' array") }
        guard dims.count <= Limits.rank.maximum else { throw bad("shape has \(dims.count) dimensions, over the limit of \(Limits.rank.maximum)") }
        var shape: [Int] = []
        var elements = 1
        for dim in dims {
            guard dim.isIntegerLiteral else { throw bad("shape entry \(shortJSON(dim)) is not an integer") }
            guard let n = dim.intValue else { throw bad("shape entry \(shortJSON(dim)) overflows") }
            guard n >= 0 else { throw bad("shape entry \(n) is negative") }
            let (product, overflow) = elements.multipliedReportingOverflow(by: n)
            guard !overflow else { throw bad("shape \(shortJSON(.array(dims))) overflows when multiplied out") }
            elements = product
            shape.append(n)
        }
        guard let offsets = value["data_offsets"]?.arrayValue, offsets.count == 2 else { throw bad("missing 'data_offsets' [begin, end]") }
        guard offsets.allSatisfy(\.isIntegerLiteral) else { throw bad("data_offsets are not integers") }
        guard let begin = offsets[0].intValue, let end = offsets[1].intValue, begin >= 0, end >= 0 else {
            throw bad("data_offsets \(shortJSON(.array(offsets))) are negative or overflow")
        }
        guard begin <= end else { throw bad("data_offsets [\(begin), \(end)) are reversed") }
        guard end <= dataLength else {
            throw bad("data_offsets [\(begin), \(end)) run past the data section of \(dataLength) bytes")
        }
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.size)
        guard !overflow, bytes == end - begin else {
            throw bad("shape \(describeShape(shape)) x \(dtype.rawValue) (\(dtype.size) bytes) needs \(overflow ? "too many" : String(bytes)) bytes but data_offsets hold \(end - begin)")
        }
        for key in value.objectPairs!.map(\.key) where !["dtype", "shape", "data_offsets"].contains(key) {
            throw bad("unexpected key '\(String(key.prefix(64)).escapedForMessage)' in the entry")
        }
        return SafetensorsEntry(name: name, dtype: dtype, shape: shape, dataRange: begin..<end)
    }
}

/// A JSON value from the file as message text: at most 64 characters, escaped.
private func shortJSON(_ value: JSONValue) -> String {
    let text = JSONWriter.write(value)
    return (text.count > 64 ? String(text.prefix(61)) + "..." : text).escapedForMessage
}
