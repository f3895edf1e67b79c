import IR

/// An ONNX model as plain Swift values, detached from protobuf-c's memory: the reader copies
/// what the importer needs and frees each unpacked protobuf message at once (see `ONNXReader`
/// for how the weights are unpacked one at a time).
struct ONNXModel {
    var irVersion: Int
    /// `producer_name producer_version`, e.g. "pytorch 2.15.0".
    var producer: String
    /// The default-domain (ai.onnx) opset, which decides the semantics of every standard op.
    var opset: Int
    var metadata: [String: String]
    var graph: ONNXGraph
}

struct ONNXGraph {
    var inputs: [ONNXValueInfo]
    var outputs: [ONNXValueInfo]
    var initializers: [ONNXTensor]
    var nodes: [ONNXNode]
}

/// A graph input or output: name, element type and shape as declared.
struct ONNXValueInfo {
    enum Dimension: Equatable {
        case fixed(Int)
        case symbolic(String)
        case unknown
    }

    var name: String
    var elementType: Int32
    var dimensions: [Dimension]?
}

struct ONNXNode {
    /// Position in the file, for messages about unnamed nodes.
    var index: Int
    var name: String
    var opType: String
    var domain: String
    var inputs: [String]
    var outputs: [String]
    var attributes: [String: ONNXAttribute]

    /// How the node is named in messages: its name, or its position when it has none.
    var label: String { name.isEmpty ? "#\(index)" : name }

    func int(_ key: String) -> Int? {
        if case .int(let value)? = attributes[key] { return value }
        return nil
    }

    func ints(_ key: String) -> [Int]? {
        if case .ints(let value)? = attributes[key] { return value }
        return nil
    }

    func float(_ key: String) -> Float? {
        if case .float(let value)? = attributes[key] { return value }
        return nil
    }

    func string(_ key: String) -> String? {
        if case .string(let value)? = attributes[key] { return value }
        return nil
    }
}

enum ONNXAttribute {
    case float(Float)
    case int(Int)
    case string(String)
    case tensor(ONNXTensor)
    case floats([Float])
    case ints([Int])
    case strings([String])
    /// Graphs, sparse tensors, type protos, or a reference to a function attribute: never
    /// used by the graphs we import; the node holding one is refused where it matters.
    case unsupported(String)
}

/// ONNX `TensorProto.DataType` values the importer distinguishes.
enum ONNXDataType: Int32, CaseIterable {
    case float = 1, uint8 = 2, int8 = 3, uint16 = 4, int16 = 5, int32 = 6, int64 = 7, string = 8, bool = 9
    case float16 = 10, double = 11, uint32 = 12, uint64 = 13, complex64 = 14, complex128 = 15, bfloat16 = 16

    /// Bytes per element in `raw_data` and external files (strings have none).
    var size: Int? {
        switch self {
        case .bool, .int8, .uint8: return 1
        case .float16, .bfloat16, .int16, .uint16: return 2
        case .float, .int32, .uint32: return 4
        case .double, .int64, .uint64, .complex64: return 8
        case .complex128: return 16
        case .string: return nil
        }
    }

    /// The floating types whose values become weights.
    var floatElementType: ElementType? {
        switch self {
        case .float: return .f32
        case .float16: return .f16
        case .bfloat16: return .bf16
        case .double: return .f64
        default: return nil
        }
    }

    var isInteger: Bool {
        switch self {
        case .bool, .int8, .uint8, .int16, .uint16, .int32, .uint32, .int64, .uint64: return true
        default: return false
        }
    }

    /// Short spelling for `inspect` (safetensors style where one exists).
    var shortName: String {
        switch self {
        case .float: return "F32"
        case .float16: return "F16"
        case .bfloat16: return "BF16"
        case .double: return "F64"
        case .int64: return "I64"
        case .int32: return "I32"
        case .int16: return "I16"
        case .int8: return "I8"
        case .uint8: return "U8"
        case .uint16: return "U16"
        case .uint32: return "U32"
        case .uint64: return "U64"
        case .bool: return "BOOL"
        case .string: return "STRING"
        case .complex64: return "C64"
        case .complex128: return "C128"
        }
    }

    static func describe(_ raw: Int32) -> String {
        ONNXDataType(rawValue: raw)?.shortName ?? "data type \(raw)"
    }
}

/// A decoded tensor: floating values as a Float32 tensor (weights), integer values as Ints
/// (shape constants, indices).
struct ONNXTensor {
    enum Values {
        case floats(FloatTensor)
        case integers([Int])
    }

    var name: String
    var dataType: ONNXDataType
    var shape: [Int]
    var values: Values
    /// Bytes as stored (raw, typed or external), for `inspect`.
    var storedBytes: Int
    /// Where the bytes came from: "raw_data", "float_data", ..., or "external FILE".
    var storage: String

    var count: Int { shape.elementCount }

    var floatTensor: FloatTensor? {
        if case .floats(let tensor) = values { return tensor }
        return nil
    }

    /// Every value as a Double (small tensors: constants, scales, epsilons).
    var doubles: [Double] {
        switch values {
        case .floats(let tensor): return tensor.buffer.map(Double.init)
        case .integers(let ints): return ints.map(Double.init)
        }
    }
}
