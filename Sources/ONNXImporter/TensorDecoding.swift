import COnnx
import IR
import Importers

/// Turns protobuf-c `TensorProto`s into `ONNXTensor`s. Every size the file declares is
/// checked before it is used: dims non-negative, their product free of overflow, and the data
/// (raw, typed or external) exactly as long as the dims say. Nothing here trusts the file.
struct TensorDecoder {
    let file: String
    let externalFiles: ExternalDataFiles

    /// Decodes `proto`; `context` says where the tensor sits, for messages ("initializer",
    /// "attribute 'value' of node X").
    func decode(_ proto: UnsafePointer<Onnx__TensorProto>, context: String) throws(ImportError) -> ONNXTensor {
        let t = proto.pointee
        let name = t.name.map { String(cString: $0).escapedForMessage } ?? ""
        let label = name.isEmpty ? context : name
        func fail(_ rule: String) -> ImportError { .invalidTensor(file: file, tensor: label, rule: rule) }

        guard t.has_data_type != 0 || t.data_type != 0 else { throw fail("has no data type") }
        guard let type = ONNXDataType(rawValue: t.data_type) else {
            throw fail("data type \(t.data_type) is not supported (float, float16, bfloat16, double or integers expected)")
        }
        guard let elementSize = type.size, type.floatElementType != nil || type.isInteger else {
            throw fail("data type \(type.shortName) is not supported (float, float16, bfloat16, double or integers expected)")
        }
        guard t.n_dims <= Limits.rank.maximum else { throw fail("has \(t.n_dims) dimensions, over the limit of \(Limits.rank.maximum)") }
        var shape: [Int] = []
        var count = 1
        for i in 0..<t.n_dims {
            guard let dims = t.dims else { throw fail("declares dims it does not hold") }
            let dim = dims[i]
            guard dim >= 0, dim <= Int64(Int32.max) else { throw fail("dimension \(i) is \(dim)") }
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(dim))
            guard !overflow, product <= Int.max / 16 else { throw fail("dims \(shapeText(t)) overflow") }
            shape.append(Int(dim))
            count = product
        }
        let byteCount = count * elementSize

        let hasRaw = t.has_raw_data != 0 || t.raw_data.len > 0
        let typedCount = t.n_float_data + t.n_int32_data + t.n_int64_data + t.n_double_data + t.n_uint64_data + t.n_string_data
        if t.has_data_location != 0, t.data_location.rawValue == 1 {
            guard !hasRaw, typedCount == 0 else { throw fail("is stored externally but also holds data in the file") }
            let external = try externalFiles.locate(tensor: label, entries: entries(t), byteCount: byteCount)
            let values = try values(from: external.bytes, type: type, shape: shape, storage: external.storage, fail: fail)
            return ONNXTensor(name: name, dataType: type, shape: shape, values: values, storedBytes: byteCount,
                              storage: "external \(external.location)")
        }
        guard t.has_data_location == 0 || t.data_location.rawValue == 0 else {
            throw fail("data_location \(t.data_location.rawValue) is not DEFAULT (0) or EXTERNAL (1)")
        }
        if hasRaw {
            guard typedCount == 0 else { throw fail("holds both raw_data and typed data") }
            guard t.raw_data.len == byteCount else {
                throw fail("raw_data holds \(t.raw_data.len) bytes but dims \(shapeText(t)) of \(type.shortName) need \(byteCount)")
            }
            guard t.raw_data.data != nil || count == 0 else { throw fail("raw_data is missing") }
            let bytes = UnsafeRawBufferPointer(start: t.raw_data.data, count: byteCount)
            return ONNXTensor(name: name, dataType: type, shape: shape,
                              values: try values(from: bytes, type: type, shape: shape, storage: nil, fail: fail),
                              storedBytes: byteCount, storage: "raw_data")
        }
        return try typed(t, name: name, type: type, shape: shape, count: count, fail: fail)
    }

    /// Tensors whose values travel in the typed repeated fields (`make_tensor(raw=False)`).
    private func typed(_ t: Onnx__TensorProto, name: String, type: ONNXDataType, shape: [Int], count: Int,
                       fail: (String) -> ImportError) throws(ImportError) -> ONNXTensor {
        func check(_ n: Int, _ field: String) throws(ImportError) {
            guard n == count else { throw fail("\(field) holds \(n) values but dims \(shapeText(t)) need \(count)") }
        }
        // Typed float fields convert like raw_data (float16 / bfloat16 bit patterns arrive widened
        // to int32 words), into owned memory in one copy.
        switch type {
        case .float:
            try check(t.n_float_data, "float_data")
            let tensor = NumericConversion.floatTensor(UnsafeRawBufferPointer(start: t.float_data, count: count * 4), type: .f32, shape: shape, storage: nil)
            return ONNXTensor(name: name, dataType: type, shape: shape, values: .floats(tensor), storedBytes: count * 4, storage: "float_data")
        case .float16, .bfloat16:
            try check(t.n_int32_data, "int32_data")
            let halves = UnsafeBufferPointer(start: t.int32_data, count: count).map { UInt16(truncatingIfNeeded: $0) }
            let tensor = halves.withUnsafeBytes { NumericConversion.floatTensor($0, type: type == .float16 ? .f16 : .bf16, shape: shape, storage: nil) }
            return ONNXTensor(name: name, dataType: type, shape: shape, values: .floats(tensor), storedBytes: count * 4, storage: "int32_data")
        case .double:
            try check(t.n_double_data, "double_data")
            let tensor = NumericConversion.floatTensor(UnsafeRawBufferPointer(start: t.double_data, count: count * 8), type: .f64, shape: shape, storage: nil)
            return ONNXTensor(name: name, dataType: type, shape: shape, values: .floats(tensor), storedBytes: count * 8, storage: "double_data")
        case .int64:
            try check(t.n_int64_data, "int64_data")
            return ONNXTensor(name: name, dataType: type, shape: shape,
                              values: .integers(UnsafeBufferPointer(start: t.int64_data, count: count).map { Int($0) }),
                              storedBytes: count * 8, storage: "int64_data")
        case .uint32, .uint64:
            try check(t.n_uint64_data, "uint64_data")
            return ONNXTensor(name: name, dataType: type, shape: shape,
                              values: .integers(UnsafeBufferPointer(start: t.uint64_data, count: count).map { Int(truncatingIfNeeded: $0) }),
                              storedBytes: count * 8, storage: "uint64_data")
        default:
            try check(t.n_int32_data, "int32_data")
            return ONNXTensor(name: name, dataType: type, shape: shape,
                              values: .integers(UnsafeBufferPointer(start: t.int32_data, count: count).map { Int($0) }),
                              storedBytes: count * 4, storage: "int32_data")
        }
    }

    /// Values from little-endian bytes.
    private func values(from bytes: UnsafeRawBufferPointer, type: ONNXDataType, shape: [Int], storage: TensorStorage?,
                        fail: (String) -> ImportError) throws(ImportError) -> ONNXTensor.Values {
        if let floatType = type.floatElementType { return .floats(NumericConversion.floatTensor(bytes, type: floatType, shape: shape, storage: storage)) }
        let count = shape.elementCount
        var ints = [Int](repeating: 0, count: count)
        for i in 0..<count {
            switch type {
            case .int64: ints[i] = Int(bytes.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))
            case .uint64: ints[i] = Int(truncatingIfNeeded: bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
            case .int32: ints[i] = Int(bytes.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))
            case .uint32: ints[i] = Int(bytes.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
            case .int16: ints[i] = Int(bytes.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))
            case .uint16: ints[i] = Int(bytes.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
            case .int8: ints[i] = Int(Int8(bitPattern: bytes[i]))
            case .uint8, .bool: ints[i] = Int(bytes[i])
            default: throw fail("data type \(type.shortName) cannot be decoded")
            }
        }
        return .integers(ints)
    }

    /// Float32 from little-endian floats of `type`. Aligned Float32 bytes inside a mapped
    /// external file are used in place (no copy); everything else is converted into owned
    /// memory, because the unpacked protobuf holding raw_data is freed right after decoding.
    private func entries(_ t: Onnx__TensorProto) -> [String: String] {
        var result: [String: String] = [:]
        for i in 0..<t.n_external_data {
            guard let entry = t.external_data?[i]?.pointee, let key = entry.key else { continue }
            result[String(cString: key).escapedForMessage] = entry.value.map { String(cString: $0).escapedForMessage } ?? ""
        }
        return result
    }

    private func shapeText(_ t: Onnx__TensorProto) -> String {
        guard let dims = t.dims else { return "[]" }
        return "[" + (0..<t.n_dims).map { String(dims[$0]) }.joined(separator: ", ") + "]"
    }
}
