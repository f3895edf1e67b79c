#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import COnnx
import IR
import Importers

/// Reads an ONNX file with libprotobuf-c into plain Swift values.
///
/// protobuf-c copies every bytes field while unpacking, so unpacking a whole single-file model
/// costs twice its size. The reader maps the file, unpacks the model and graph without their
/// initializers (see `WireLayout`), then unpacks, decodes and frees one initializer at a time,
/// dropping each one's pages of the map once its tensor is decoded: the peak stays near one
/// copy of the weights (Float32 tensors in owned memory; external data stays mapped).
enum ONNXReader {
    /// protobuf's own limit on a message; larger models must keep weights as external data.
    static let maximumFileSize = Int(Int32.max)

    static func read(path: String) throws(ImportError) -> ONNXModel {
        let file = displayName(path)
        let mapped: TensorStorage
        do { mapped = try TensorStorage.map(path: path) } catch { throw .unreadable(file: file, reason: error.message) }
        let bytes = mapped.bytes(0..<mapped.byteCount)
        func malformed(_ what: String) -> ImportError {
            .invalidFile(file: file, format: "ONNX", rule: "the protobuf is truncated or malformed (libprotobuf-c cannot parse \(what))")
        }
        guard bytes.count > 0 else { throw .invalidFile(file: file, format: "ONNX", rule: "the file is empty") }
        guard bytes.count <= maximumFileSize else {
            throw .invalidFile(file: file, format: "ONNX",
                               rule: "\(bytes.count) bytes exceed protobuf's 2 GB limit (store the weights as external data)")
        }
        if let cost = UnpackBudget.estimate(bytes), cost > 2 * bytes.count + UnpackBudget.allowance {
            throw .invalidFile(file: file, format: "ONNX",
                               rule: "unpacking would take about \(cost >> 20) MB for a \(bytes.count >> 20) MB file (a protobuf expansion attack?)")
        }
        let layout: WireLayout
        do { layout = try WireLayout.split(bytes) } catch {
            switch error {
            case .malformed: throw malformed("it")
            case .noGraph: throw .invalidFile(file: file, format: "ONNX", rule: "the model has no graph")
            case .severalGraphs: throw .invalidFile(file: file, format: "ONNX", rule: "the model holds more than one graph")
            }
        }
        guard layout.initializers.count <= ProtoConverter.maximumNodes else {
            throw .invalidFile(file: file, format: "ONNX", rule: "the graph has \(layout.initializers.count) initializers (at most \(ProtoConverter.maximumNodes))")
        }
        let converter = ProtoConverter(file: file, decoder: TensorDecoder(file: file, externalFiles: ExternalDataFiles(modelPath: path)))

        var initializers: [ONNXTensor] = []
        initializers.reserveCapacity(layout.initializers.count)
        guard let base = bytes.baseAddress else { throw malformed("it") }
        try ProtobufAllocator.with { (allocator) throws(ImportError) in
            for (i, range) in layout.initializers.enumerated() {
                let start = (base + range.lowerBound).assumingMemoryBound(to: UInt8.self)
                guard let proto = onnx__tensor_proto__unpack(allocator, range.count, start) else { throw malformed("initializer \(i)") }
                defer { onnx__tensor_proto__free_unpacked(proto, allocator) }
                let tensor = try converter.decoder.decode(proto, context: "initializer \(i)")
                guard !tensor.name.isEmpty else { throw .invalidFile(file: file, format: "ONNX", rule: "initializer \(i) has no name") }
                initializers.append(tensor)
                release(range, of: mapped)
            }
        }
        let graph = try layout.graph.withUnsafeBufferPointer { buffer throws(ImportError) -> ONNXGraph in
            guard let unpacked = onnx__graph_proto__unpack(nil, buffer.count, buffer.baseAddress) else { throw malformed("the graph") }
            defer { onnx__graph_proto__free_unpacked(unpacked, nil) }
            return try converter.graph(unpacked.pointee, initializers: initializers)
        }
        return try layout.model.withUnsafeBufferPointer { buffer throws(ImportError) -> ONNXModel in
            guard let unpacked = onnx__model_proto__unpack(nil, buffer.count, buffer.baseAddress) else { throw malformed("the model") }
            defer { onnx__model_proto__free_unpacked(unpacked, nil) }
            return try converter.model(unpacked.pointee, graph: graph)
        }
    }

    /// Drops the pages wholly inside `range` from memory: the tensor there is decoded, and a
    /// read-only private map re-reads from the file should anything touch them again.
    private static func release(_ range: Range<Int>, of map: TensorStorage) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard page > 0 else { return }
        let start = (range.lowerBound + page - 1) / page * page
        let end = range.upperBound / page * page
        guard start < end else { return }
        madvise(UnsafeMutableRawPointer(mutating: map.base + start), end - start, MADV_DONTNEED)
    }
}

/// protobuf-c structures -> Swift values, validating as it goes.
struct ProtoConverter {
    let file: String
    let decoder: TensorDecoder

    func invalid(_ rule: String) -> ImportError { .invalidFile(file: file, format: "ONNX", rule: rule) }

    func model(_ m: Onnx__ModelProto, graph: ONNXGraph) throws(ImportError) -> ONNXModel {
        var opsets: [String: Int] = [:]
        for i in 0..<m.n_opset_import {
            guard let entry = m.opset_import?[i]?.pointee else { continue }
            var domain = text(entry.domain)
            if domain == "ai.onnx" { domain = "" }
            opsets[domain] = Int(entry.version)
        }
        guard let opset = opsets[""] else { throw invalid("the model imports no version of the default (ai.onnx) operator set") }
        guard opset >= 1, opset < 1000 else { throw invalid("default operator set version \(opset) is not a valid opset") }
        var producer = text(m.producer_name)
        let version = text(m.producer_version)
        if !version.isEmpty { producer += (producer.isEmpty ? "" : " ") + version }
        return ONNXModel(irVersion: Int(m.ir_version), producer: producer, opset: opset,
                         metadata: entries(m.metadata_props, m.n_metadata_props), graph: graph)
    }

    /// Far beyond any DeiT (DeiT-B exports ~850-2,500 nodes); keeps a hostile graph of
    /// millions of tiny nodes from costing gigabytes as Swift values.
    static let maximumNodes = 1_000_000

    /// The graph's nodes and inputs; its initializers were unpacked one by one (`WireLayout`).
    func graph(_ g: Onnx__GraphProto, initializers: [ONNXTensor]) throws(ImportError) -> ONNXGraph {
        guard g.n_node <= Self.maximumNodes else {
            throw invalid("the graph has \(g.n_node) nodes (at most \(Self.maximumNodes))")
        }
        var nodes: [ONNXNode] = []
        nodes.reserveCapacity(g.n_node)
        for i in 0..<g.n_node {
            guard let proto = g.node?[i]?.pointee else { throw invalid("node \(i) is missing") }
            nodes.append(try node(proto, index: i))
        }
        return ONNXGraph(inputs: valueInfos(g.input, g.n_input), outputs: valueInfos(g.output, g.n_output),
                         initializers: initializers, nodes: nodes)
    }

    func node(_ n: Onnx__NodeProto, index: Int) throws(ImportError) -> ONNXNode {
        let name = text(n.name)
        let label = name.isEmpty ? "#\(index)" : name
        let opType = text(n.op_type)
        guard !opType.isEmpty else { throw .invalidNode(file: file, node: label, rule: "has no op_type") }
        var attributes: [String: ONNXAttribute] = [:]
        for i in 0..<n.n_attribute {
            guard let proto = n.attribute?[i]?.pointee else { continue }
            let key = text(proto.name)
            guard !key.isEmpty else { throw .invalidNode(file: file, node: label, rule: "attribute \(i) has no name") }
            guard attributes[key] == nil else { throw .invalidNode(file: file, node: label, rule: "attribute '\(key)' appears twice") }
            attributes[key] = try attribute(proto, node: label)
        }
        return ONNXNode(index: index, name: name, opType: opType, domain: text(n.domain) == "ai.onnx" ? "" : text(n.domain),
                        inputs: strings(n.input, n.n_input), outputs: strings(n.output, n.n_output), attributes: attributes)
    }

    /// An attribute by its declared type (IR >= 2 always declares it); for older files the
    /// one field that is set decides.
    func attribute(_ a: Onnx__AttributeProto, node: String) throws(ImportError) -> ONNXAttribute {
        if a.ref_attr_name != nil { return .unsupported("reference to a function attribute") }
        var type = a.has_type != 0 ? Int(a.type.rawValue) : 0
        if type == 0 {
            if a.has_f != 0 { type = 1 } else if a.has_i != 0 { type = 2 } else if a.has_s != 0 { type = 3 }
            else if a.t != nil { type = 4 } else if a.n_floats > 0 { type = 6 } else if a.n_ints > 0 { type = 7 }
            else if a.n_strings > 0 { type = 8 } else if a.n_tensors > 0 { type = 9 }
        }
        switch type {
        case 1: return .float(a.f)
        case 2: return .int(Int(a.i))
        case 3: return .string(bytesText(a.s))
        case 4:
            guard let t = a.t else { throw .invalidNode(file: file, node: node, rule: "tensor attribute '\(text(a.name))' holds no tensor") }
            return .tensor(try decoder.decode(t, context: "attribute '\(text(a.name))' of node \(node)"))
        case 6: return .floats(Array(UnsafeBufferPointer(start: a.floats, count: a.floats == nil ? 0 : a.n_floats)))
        case 7: return .ints(UnsafeBufferPointer(start: a.ints, count: a.ints == nil ? 0 : a.n_ints).map { Int($0) })
        case 8:
            guard let strings = a.strings else { return .strings([]) }
            return .strings((0..<a.n_strings).map { bytesText(strings[$0]) })
        case 9: return .unsupported("tensor list")
        case 5, 10: return .unsupported("subgraph")
        case 11, 12: return .unsupported("sparse tensor")
        case 13, 14: return .unsupported("type proto")
        default: return .unsupported("attribute type \(type)")
        }
    }

    func valueInfos(_ list: UnsafeMutablePointer<UnsafeMutablePointer<Onnx__ValueInfoProto>?>?, _ count: Int) -> [ONNXValueInfo] {
        guard let list else { return [] }
        return (0..<count).compactMap { i -> ONNXValueInfo? in
            guard let info = list[i]?.pointee else { return nil }
            var elementType: Int32 = 0
            var dimensions: [ONNXValueInfo.Dimension]?
            if let type = info.type?.pointee, type.value_case.rawValue == 1, let tensor = type.tensor_type?.pointee {
                elementType = tensor.elem_type
                if let shape = tensor.shape?.pointee {
                    dimensions = (0..<shape.n_dim).map { d -> ONNXValueInfo.Dimension in
                        guard let dim = shape.dim?[d]?.pointee else { return .unknown }
                        switch dim.value_case.rawValue {
                        case 1: return dim.dim_value >= 0 && dim.dim_value <= Int64(Int32.max) ? .fixed(Int(dim.dim_value)) : .unknown
                        case 2: return .symbolic(text(dim.dim_param))
                        default: return .unknown
                        }
                    }
                }
            }
            return ONNXValueInfo(name: text(info.name), elementType: elementType, dimensions: dimensions)
        }
    }

    func entries(_ list: UnsafeMutablePointer<UnsafeMutablePointer<Onnx__StringStringEntryProto>?>?, _ count: Int) -> [String: String] {
        var result: [String: String] = [:]
        guard let list else { return result }
        for i in 0..<count {
            guard let entry = list[i]?.pointee else { continue }
            result[text(entry.key)] = text(entry.value)
        }
        return result
    }

    func strings(_ list: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ count: Int) -> [String] {
        guard let list else { return [] }
        return (0..<count).map { text(list[$0]) }
    }

    func text(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
        pointer.map { String(cString: $0).escapedForMessage } ?? ""
    }

    func bytesText(_ data: ProtobufCBinaryData) -> String {
        guard let bytes = data.data, data.len > 0 else { return "" }
        return String(decoding: UnsafeBufferPointer(start: bytes, count: data.len), as: UTF8.self).escapedForMessage
    }
}
