import COnnx
import Exporters
import IR
import Importers

/// Serialises an `ONNXModelDraft` to an ONNX file, streaming the weights.
///
/// protobuf-c packs a message only whole, from C structs that point at every byte: packing
/// the model in one go would hold a second copy of DeiT-B's 346 MB. So only the small parts
/// are packed by protobuf-c (the ModelProto's own fields; the GraphProto's nodes, inputs,
/// outputs and small constants; each weight's TensorProto header), and the writer frames the
/// weights itself. A protobuf message may carry its fields in any order and a length-delimited
/// field is just key, length, bytes, so the file is
///
///     ModelProto fields                      packed
///     key 7 (graph), graph length
///       GraphProto fields                    packed
///       per weight: key 5 (initializer), length
///         TensorProto name, dims, type       packed
///         key 9 (raw_data), byte count, the weight's bytes straight from its mapped storage
///
/// All lengths are known before the first byte is written (every size is computed from the
/// packed headers and the tensors' shapes), so it is written front to back, once.
///
/// With external data the weights of at least `externalThreshold` bytes go to `OUT.data` next
/// to the model instead, each at a 4096-byte aligned offset (ONNX Runtime maps page-aligned
/// external tensors instead of copying them), and their headers carry `location` (the data
/// file's name, relative to the model), `offset` and `length`. Files larger than protobuf's
/// 2 GB message limit must use it.
enum ModelFileWriter {
    /// protobuf's limit on one message (a signed 32-bit length).
    static let protobufLimit = Int(Int32.max)
    static let externalThreshold = 1024
    static let externalAlignment = 4096

    enum ExternalData {
        /// Only when the single file would exceed protobuf's limit.
        case whenNeeded
        case always
    }

    struct Written {
        var modelBytes: Int
        /// The external data file and its size, when one was written.
        var dataFile: (path: String, bytes: Int)?
    }

    /// Where one weight's bytes go.
    private enum Placement {
        case inline
        case external(offset: Int)
    }

    private struct Weight {
        var header: [UInt8]
        var tensor: FloatTensor
        var placement: Placement

        var inlineBytes: Int {
            guard case .inline = placement else { return 0 }
            return Wire.fieldSize(9, length: tensor.count * 4)
        }
        /// The TensorProto's length inside the graph.
        var messageLength: Int { header.count + inlineBytes }
    }

    /// `singleFileLimit`: the largest single file before the weights move out (protobuf's limit;
    /// tests lower it).
    static func write(_ draft: ONNXModelDraft, to path: String, externalData: ExternalData,
                      singleFileLimit: Int = protobufLimit) throws(ExportError) -> Written {
        let weightCount = draft.graph.initializers.reduce(0) { total, initializer in
            if case .weight = initializer.payload { return total + 1 }
            return total
        }
        // A single file first; external data when asked for or when the single file is too big.
        var layout = try plan(draft, external: externalData == .always ? dataLocation(path) : nil)
        if externalData == .whenNeeded, layout.fileBytes > singleFileLimit, weightCount > 0 {
            layout = try plan(draft, external: dataLocation(path))
        }
        guard layout.fileBytes <= protobufLimit else {
            throw .invalidRequest("\(displayName(path)): the model graph alone is \(layout.fileBytes) bytes, over protobuf's 2 GB limit")
        }
        var written = Written(modelBytes: layout.fileBytes, dataFile: nil)
        // The data first, then the model that points into it: a reader that sees the new model
        // finds its data complete.
        if layout.dataBytes > 0 {
            let dataPath = path + ".data"
            let file = try AtomicFile(destination: dataPath)
            var position = 0
            for weight in layout.weights {
                guard case .external(let offset) = weight.placement else { continue }
                try file.write([UInt8](repeating: 0, count: offset - position))
                try stream(weight.tensor, to: file)
                position = offset + weight.tensor.count * 4
            }
            try file.commit()
            written.dataFile = (dataPath, position)
        }
        let file = try AtomicFile(destination: path)
        try file.write(layout.modelHead)
        try file.write(Wire.key(7) + Wire.varint(layout.graphLength))
        try file.write(layout.graphHead)
        for weight in layout.weights {
            try file.write(Wire.key(5) + Wire.varint(weight.messageLength))
            try file.write(weight.header)
            guard case .inline = weight.placement else { continue }
            try file.write(Wire.key(9) + Wire.varint(weight.tensor.count * 4))
            try stream(weight.tensor, to: file)
        }
        try file.commit()
        return written
    }

    private static func dataLocation(_ path: String) -> String {
        (path.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? path) + ".data"
    }

    private struct Layout {
        var modelHead: [UInt8]
        var graphHead: [UInt8]
        var weights: [Weight]
        var graphLength: Int
        var fileBytes: Int
        var dataBytes: Int
    }

    /// Packs everything but the weights' bytes and computes every length and offset.
    private static func plan(_ draft: ONNXModelDraft, external location: String?) throws(ExportError) -> Layout {
        let arena = ProtoArena()
        var weights: [Weight] = []
        var smallTensors: [UnsafeMutablePointer<Onnx__TensorProto>?] = []
        var dataBytes = 0
        for initializer in draft.graph.initializers {
            switch initializer.payload {
            case .weight(let tensor):
                let bytes = tensor.count * 4
                var placement = Placement.inline
                var reference: (location: String, offset: Int, length: Int)?
                if let location, bytes >= externalThreshold {
                    let offset = (dataBytes + externalAlignment - 1) / externalAlignment * externalAlignment
                    placement = .external(offset: offset)
                    reference = (location, offset, bytes)
                    dataBytes = offset + bytes
                }
                let header = packed(arena.tensor(initializer, rawData: nil, external: reference))
                weights.append(Weight(header: header, tensor: tensor, placement: placement))
            case .int64s(let values):
                smallTensors.append(arena.tensor(initializer, rawData: Wire.littleEndian(values), external: nil))
            case .floats(let values):
                smallTensors.append(arena.tensor(initializer, rawData: Wire.littleEndian(values.map(\.bitPattern)), external: nil))
            }
        }
        let graph = arena.message(onnx__graph_proto__init)
        graph.pointee.name = arena.string(draft.graph.name)
        graph.pointee.n_node = draft.graph.nodes.count
        graph.pointee.node = arena.array(draft.graph.nodes.map { Optional(arena.node($0)) })
        graph.pointee.n_initializer = smallTensors.count
        graph.pointee.initializer = arena.array(smallTensors)
        graph.pointee.n_input = draft.graph.inputs.count
        graph.pointee.input = arena.array(draft.graph.inputs.map { Optional(arena.valueInfo($0)) })
        graph.pointee.n_output = draft.graph.outputs.count
        graph.pointee.output = arena.array(draft.graph.outputs.map { Optional(arena.valueInfo($0)) })
        let graphHead = packed(graph)

        let model = arena.message(onnx__model_proto__init)
        model.pointee.has_ir_version = 1
        model.pointee.ir_version = Int64(draft.irVersion)
        model.pointee.producer_name = arena.string(draft.producerName)
        model.pointee.producer_version = arena.string(draft.producerVersion)
        model.pointee.doc_string = arena.string(draft.docString)
        model.pointee.n_opset_import = 1
        model.pointee.opset_import = arena.array([Optional(arena.opset(draft.opset))])
        model.pointee.n_metadata_props = draft.metadata.count
        model.pointee.metadata_props = arena.array(draft.metadata.map { Optional(arena.entry($0.key, $0.value)) })
        let modelHead = packed(model)

        var graphLength = graphHead.count
        for weight in weights {
            let (sum, overflow) = graphLength.addingReportingOverflow(Wire.fieldSize(5, length: weight.messageLength))
            guard !overflow else { throw .invalidRequest("the model's size overflows") }
            graphLength = sum
        }
        let fileBytes = modelHead.count + Wire.fieldSize(7, length: graphLength)
        return Layout(modelHead: modelHead, graphHead: graphHead, weights: weights, graphLength: graphLength,
                      fileBytes: fileBytes, dataBytes: dataBytes)
    }

    /// A weight's Float32 bytes (little-endian, as raw_data wants them), a window of the mapped
    /// input at a time so it never becomes resident as a whole.
    private static func stream(_ tensor: FloatTensor, to file: AtomicFile) throws(ExportError) {
        let bytes = UnsafeRawBufferPointer(start: tensor.pointer, count: tensor.count * 4)
        try tensor.storage.forEachWindow(of: bytes) { (part) throws(ExportError) in try file.write(part) }
    }
}

/// The few pieces of the protobuf wire format the writer frames itself.
enum Wire {
    /// The key of a length-delimited field (wire type 2).
    static func key(_ field: Int) -> [UInt8] { varint(field << 3 | 2) }

    static func varint(_ value: Int) -> [UInt8] {
        var rest = UInt64(value)
        var out: [UInt8] = []
        while rest >= 0x80 {
            out.append(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        }
        out.append(UInt8(rest))
        return out
    }

    /// Key, length and payload of a length-delimited field.
    static func fieldSize(_ field: Int, length: Int) -> Int { key(field).count + varint(length).count + length }

    static func littleEndian<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(values.count * MemoryLayout<T>.size)
        for value in values {
            var v = value.littleEndian
            withUnsafeBytes(of: &v) { out.append(contentsOf: $0) }
        }
        return out
    }
}
