import IR

/// A PyTorch element type, as a storage class (`torch.HalfStorage`) or a dtype global
/// (`torch.float16`) names it in a pickle.
public enum TorchDType: String, Sendable, CaseIterable {
    case float32, float64, float16, bfloat16
    case int64, int32, int16, int8, uint8, bool
    case complex64, complex128
    case uint16, uint32, uint64
    case float8_e4m3fn, float8_e5m2, float8_e4m3fnuz, float8_e5m2fnuz

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float64, .int64, .complex64, .uint64: return 8
        case .float32, .int32, .uint32: return 4
        case .float16, .bfloat16, .int16, .uint16: return 2
        case .int8, .uint8, .bool, .float8_e4m3fn, .float8_e5m2, .float8_e4m3fnuz, .float8_e5m2fnuz: return 1
        case .complex128: return 16
        }
    }

    /// The float types idlevit reads as weights (widened to Float32 like the other importers).
    public var floatSource: ElementType? {
        switch self {
        case .float32: return .f32
        case .float16: return .f16
        case .bfloat16: return .bf16
        case .float64: return .f64
        default: return nil
        }
    }

    /// The safetensors spelling, for `inspect`'s tensor table.
    public var shortName: String {
        switch self {
        case .float32: return "F32"
        case .float64: return "F64"
        case .float16: return "F16"
        case .bfloat16: return "BF16"
        case .int64: return "I64"
        case .int32: return "I32"
        case .int16: return "I16"
        case .int8: return "I8"
        case .uint8: return "U8"
        case .bool: return "BOOL"
        case .complex64: return "C64"
        case .complex128: return "C128"
        case .uint16: return "U16"
        case .uint32: return "U32"
        case .uint64: return "U64"
        default: return rawValue.uppercased()
        }
    }

    /// `torch.<name>` dtype globals, including the aliases torch pickles never write but a
    /// hand-made file could (`torch.float`, `torch.half`).
    static func dtype(named name: String) -> TorchDType? {
        if let exact = TorchDType(rawValue: name) { return exact }
        switch name {
        case "float": return .float32
        case "double": return .float64
        case "half": return .float16
        case "long": return .int64
        case "int": return .int32
        case "short": return .int16
        case "cfloat": return .complex64
        case "cdouble": return .complex128
        default: return nil
        }
    }

    /// `torch.FloatStorage` and friends (also `torch.cuda.*Storage` from GPU checkpoints of
    /// torch < 1.6: the bytes are the same, idlevit reads them on the CPU).
    static func storageClass(named name: String) -> TorchDType? {
        switch name {
        case "FloatStorage": return .float32
        case "DoubleStorage": return .float64
        case "HalfStorage": return .float16
        case "BFloat16Storage": return .bfloat16
        case "LongStorage": return .int64
        case "IntStorage": return .int32
        case "ShortStorage": return .int16
        case "CharStorage": return .int8
        case "ByteStorage": return .uint8
        case "BoolStorage": return .bool
        case "ComplexFloatStorage": return .complex64
        case "ComplexDoubleStorage": return .complex128
        default: return nil
        }
    }
}

/// The class in a storage's persistent id: a typed storage, or torch 2.x's `UntypedStorage`
/// (bytes, whose element type the tensor rebuild names).
public enum StorageClass: Sendable, Equatable, CustomStringConvertible {
    case typed(TorchDType)
    case untyped

    /// Element type of the storage's `numel`.
    var elementType: TorchDType {
        switch self {
        case .typed(let dtype): return dtype
        case .untyped: return .uint8
        }
    }

    public var description: String {
        switch self {
        case .typed(let dtype): return "storage of \(dtype.rawValue)"
        case .untyped: return "untyped storage"
        }
    }
}

/// One storage a pickle refers to by persistent id: where its bytes are in the mapped file.
struct StorageRecord: Sendable {
    /// The key in the persistent id: the zip entry `data/<key>`, or the legacy stream's key.
    var key: String
    var storageClass: StorageClass
    /// Elements of `storageClass.elementType`, as the persistent id declares them.
    var elementCount: Int
    /// Bytes of the storage: elementCount x element size, checked.
    var byteCount: Int
    /// The storage's bytes in the file (zip: known when the pickle refers to it; legacy: once
    /// the storage table after the pickles has been read).
    var bytes: Range<Int>?
}

/// A tensor as `_rebuild_tensor*` describes it: a view of a storage. Only the geometry is
/// read while unpickling (checked against the storage's size); elements are read when the
/// tensor is converted.
struct TensorRecord: Sendable {
    var storage: Int
    var dtype: TorchDType
    /// Offset, sizes and strides in elements of `dtype`.
    var offset: Int
    var sizes: [Int]
    var strides: [Int]
    var elementCount: Int

    /// Row-major, no gaps: the tensor's bytes are one run of the storage.
    var isContiguous: Bool {
        var expected = 1
        for axis in sizes.indices.reversed() where sizes[axis] != 1 {
            if strides[axis] != expected { return false }
            expected = expected &* sizes[axis]
        }
        return true
    }
}
