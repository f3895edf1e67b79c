#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import COnnx

/// Packs the small messages of an ONNX model (nodes, value infos, tensor headers, the model's
/// own fields) with libprotobuf-c's generated code for `Schemas/onnx.proto`.
///
/// protobuf-c messages are C structs holding C pointers: the arena owns every string, array
/// and sub-message built for one pack and frees them all at once. Weights never pass through
/// here; `ModelFileWriter` frames their bytes around the packed headers.
final class ProtoArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    deinit {
        for block in blocks { free(block) }
    }

    private func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        // malloc(0) may return NULL; a byte is cheaper than the special case.
        guard let block = calloc(1, max(bytes, 1)) else { fatalError("out of memory packing an ONNX message") }
        blocks.append(block)
        return block
    }

    func string(_ text: String) -> UnsafeMutablePointer<CChar> {
        let utf8 = Array(text.utf8CString)
        let block = allocate(utf8.count).bindMemory(to: CChar.self, capacity: utf8.count)
        block.update(from: utf8, count: utf8.count)
        return block
    }

    func array<T>(_ values: [T]) -> UnsafeMutablePointer<T>? {
        guard !values.isEmpty else { return nil }
        let block = allocate(values.count * MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: values.count)
        block.initialize(from: values, count: values.count)
        return block
    }

    func strings(_ texts: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
        array(texts.map { Optional(string($0)) })
    }

    func bytes(_ data: [UInt8]) -> ProtobufCBinaryData {
        guard let block = array(data) else { return ProtobufCBinaryData(len: 0, data: nil) }
        return ProtobufCBinaryData(len: data.count, data: block)
    }

    /// A zeroed message of type `T`, set up by its generated `__init` function.
    func message<T>(_ initialise: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let block = allocate(MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: 1)
        initialise(block)
        return block
    }

    // MARK: ONNX messages

    func entry(_ key: String, _ value: String) -> UnsafeMutablePointer<Onnx__StringStringEntryProto> {
        let entry = message(onnx__string_string_entry_proto__init)
        entry.pointee.key = string(key)
        entry.pointee.value = string(value)
        return entry
    }

    func attribute(_ name: String, _ value: ONNXAttributeValue) -> UnsafeMutablePointer<Onnx__AttributeProto> {
        let a = message(onnx__attribute_proto__init)
        a.pointee.name = string(name)
        a.pointee.has_type = 1
        switch value {
        case .int(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT
            a.pointee.has_i = 1
            a.pointee.i = Int64(v)
        case .float(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT
            a.pointee.has_f = 1
            a.pointee.f = v
        case .ints(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS
            a.pointee.n_ints = v.count
            a.pointee.ints = array(v.map(Int64.init))
        case .string(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING
            a.pointee.has_s = 1
            a.pointee.s = bytes(Array(v.utf8))
        }
        return a
    }

    func node(_ draft: ONNXNodeDraft) -> UnsafeMutablePointer<Onnx__NodeProto> {
        let n = message(onnx__node_proto__init)
        n.pointee.name = string(draft.name)
        n.pointee.op_type = string(draft.opType)
        n.pointee.n_input = draft.inputs.count
        n.pointee.input = strings(draft.inputs)
        n.pointee.n_output = draft.outputs.count
        n.pointee.output = strings(draft.outputs)
        n.pointee.n_attribute = draft.attributes.count
        n.pointee.attribute = array(draft.attributes.map { Optional(attribute($0.name, $0.value)) })
        return n
    }

    func valueInfo(_ info: ONNXValueInfo) -> UnsafeMutablePointer<Onnx__ValueInfoProto> {
        let dims = info.shape.map { dimension -> UnsafeMutablePointer<Onnx__TensorShapeProto__Dimension>? in
            let d = message(onnx__tensor_shape_proto__dimension__init)
            switch dimension {
            case .value(let v):
                d.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                d.pointee.dim_value = Int64(v)
            case .parameter(let name):
                d.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                d.pointee.dim_param = string(name)
            }
            return d
        }
        let shape = message(onnx__tensor_shape_proto__init)
        shape.pointee.n_dim = dims.count
        shape.pointee.dim = array(dims)
        let tensor = message(onnx__type_proto__tensor__init)
        tensor.pointee.has_elem_type = 1
        tensor.pointee.elem_type = info.elementType.rawValue
        tensor.pointee.shape = shape
        let type = message(onnx__type_proto__init)
        type.pointee.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
        type.pointee.tensor_type = tensor
        let v = message(onnx__value_info_proto__init)
        v.pointee.name = string(info.name)
        v.pointee.type = type
        return v
    }

    /// A TensorProto: name, dims and type, plus `raw_data` when given (small constants) or the
    /// external-data reference when given. A weight's header carries neither: its raw_data
    /// field is framed by the writer around the streamed bytes.
    func tensor(_ draft: ONNXInitializerDraft, rawData: [UInt8]?, external: (location: String, offset: Int, length: Int)?)
        -> UnsafeMutablePointer<Onnx__TensorProto> {
        let t = message(onnx__tensor_proto__init)
        t.pointee.name = string(draft.name)
        t.pointee.n_dims = draft.dims.count
        t.pointee.dims = array(draft.dims.map(Int64.init))
        t.pointee.has_data_type = 1
        t.pointee.data_type = draft.elementType.rawValue
        if let rawData {
            t.pointee.has_raw_data = 1
            t.pointee.raw_data = bytes(rawData)
        }
        if let external {
            let entries = [entry("location", external.location), entry("offset", String(external.offset)),
                           entry("length", String(external.length))]
            t.pointee.n_external_data = entries.count
            t.pointee.external_data = array(entries.map(Optional.init))
            t.pointee.has_data_location = 1
            t.pointee.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL
        }
        return t
    }

    func opset(_ version: Int) -> UnsafeMutablePointer<Onnx__OperatorSetIdProto> {
        let o = message(onnx__operator_set_id_proto__init)
        o.pointee.domain = string("")
        o.pointee.has_version = 1
        o.pointee.version = Int64(version)
        return o
    }
}

/// The protobuf wire bytes of any generated message (all start with their `ProtobufCMessage`).
func packed<T>(_ message: UnsafeMutablePointer<T>) -> [UInt8] {
    let base = UnsafeRawPointer(message).assumingMemoryBound(to: ProtobufCMessage.self)
    let size = protobuf_c_message_get_packed_size(base)
    guard size > 0 else { return [] }
    var out = [UInt8](repeating: 0, count: size)
    let written = out.withUnsafeMutableBufferPointer { protobuf_c_message_pack(base, $0.baseAddress!) }
    precondition(written == size, "protobuf-c packed \(written) bytes of \(size)")
    return out
}
