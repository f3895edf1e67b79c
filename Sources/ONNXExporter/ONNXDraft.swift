import IR

/// The ONNX model being exported, as plain Swift values: what `OpTranslation` builds and
/// `ModelFileWriter` serialises. Only the parts of ONNX the export uses.

/// TensorProto.DataType values the export writes.
enum ONNXElementType: Int32 {
    case float = 1
    case int64 = 7
    case double = 11
}

/// One dimension of a graph input or output: a fixed extent or a named symbolic one.
enum ONNXDimension: Equatable {
    case value(Int)
    case parameter(String)
}

/// A graph input or output with its type.
struct ONNXValueInfo {
    var name: String
    var elementType: ONNXElementType
    var shape: [ONNXDimension]
}

enum ONNXAttributeValue: Equatable {
    case int(Int)
    case float(Float)
    case ints([Int])
    case string(String)
}

struct ONNXNodeDraft {
    var name: String
    var opType: String
    var inputs: [String]
    var outputs: [String]
    var attributes: [(name: String, value: ONNXAttributeValue)]
}

/// An initializer: a weight streamed from its (mapped) storage, or a small constant the
/// translation made (shapes, indices, scalars), packed inline.
struct ONNXInitializerDraft {
    enum Payload {
        case weight(FloatTensor)
        case int64s([Int64])
        case floats([Float])
    }

    var name: String
    var dims: [Int]
    var payload: Payload

    var elementType: ONNXElementType {
        switch payload {
        case .weight, .floats: return .float
        case .int64s: return .int64
        }
    }

    /// Bytes of the tensor's data (raw_data, little-endian).
    var byteCount: Int {
        switch payload {
        case .weight(let tensor): return tensor.count * 4
        case .int64s(let values): return values.count * 8
        case .floats(let values): return values.count * 4
        }
    }
}

struct ONNXGraphDraft {
    var name: String
    var nodes: [ONNXNodeDraft] = []
    var initializers: [ONNXInitializerDraft] = []
    var inputs: [ONNXValueInfo] = []
    var outputs: [ONNXValueInfo] = []
}

struct ONNXModelDraft {
    var irVersion: Int
    var opset: Int
    var producerName: String
    var producerVersion: String
    var docString: String
    /// ModelProto.metadata_props: what ORT shows as `custom_metadata_map`.
    var metadata: [(key: String, value: String)]
    var graph: ONNXGraphDraft
}
