import Exporters
import IR
import Importers

/// How to export.
public struct ONNXExportOptions: Sendable {
    /// Opsets whose operators the export writes unchanged (LayerNormalization arrives in 17;
    /// nothing it uses changes meaning up to 21). ONNX Runtime 1.18+ runs all of them.
    public static let supportedOpsets = 17...21
    public static let defaultOpset = 17

    public var opset: Int
    /// Adds `blocks.{i}.selected` int64 [batch, P + K] per idle layer to the outputs.
    public var selectionOutputs: Bool
    /// Weights in `OUT.data` next to the model (automatic when one file would pass 2 GB).
    public var externalData: Bool
    public var producerName: String
    public var producerVersion: String

    public init(opset: Int = ONNXExportOptions.defaultOpset, selectionOutputs: Bool = false, externalData: Bool = false,
                producerName: String = "idlevit", producerVersion: String = "") {
        self.opset = opset
        self.selectionOutputs = selectionOutputs
        self.externalData = externalData
        self.producerName = producerName
        self.producerVersion = producerVersion
    }

    /// The ONNX IR version that goes with an opset (the oldest that knows it, so older
    /// runtimes still open the file).
    static func irVersion(opset: Int) -> Int {
        switch opset {
        case ...18: return 8
        case 19...20: return 9
        default: return 10
        }
    }
}

public enum ONNXExportError: Error, CustomStringConvertible {
    case unsupported(node: String, reason: String)
    case options(String)
    case write(ExportError)

    public var description: String {
        switch self {
        case .unsupported(let node, let reason): return "cannot export to ONNX: node '\(node.escapedForMessage)' \(reason)"
        case .options(let message): return message
        case .write(let error): return error.description
        }
    }
}

/// What was written.
public struct ONNXExportSummary: Sendable {
    public var path: String
    public var bytes: Int
    public var dataFile: String?
    public var dataBytes: Int
    public var nodes: Int
    public var outputs: [String]
}

/// IR graph (dense or IdleViT-rewritten) -> ONNX model file for ONNX Runtime.
///
/// Contract (DESIGN.md §1): one input, the IR's image input (`pixel_values`, float
/// [batch, 3, H, W], batch symbolic); the IR's outputs (`logits` [batch, classes]); with
/// `selectionOutputs` every token_select value (`blocks.{i}.selected`) as int64
/// [batch, P + K]. Weights are initializers under their IR (timm) names.
public enum ONNXExporter {
    /// The name of the symbolic batch dimension in the graph's inputs and outputs.
    static let batchParameter = "batch"

    public static func export(_ graph: Graph, options: ONNXExportOptions, to path: String) throws(ONNXExportError) -> ONNXExportSummary {
        let draft = try model(graph, options: options)
        do {
            let written = try ModelFileWriter.write(draft, to: path, externalData: options.externalData ? .always : .whenNeeded)
            return ONNXExportSummary(path: path, bytes: written.modelBytes, dataFile: written.dataFile?.path,
                                     dataBytes: written.dataFile?.bytes ?? 0, nodes: draft.graph.nodes.count,
                                     outputs: draft.graph.outputs.map(\.name))
        } catch {
            throw .write(error)
        }
    }

    /// The ONNX model as values, before serialisation.
    static func model(_ graph: Graph, options: ONNXExportOptions) throws(ONNXExportError) -> ONNXModelDraft {
        guard ONNXExportOptions.supportedOpsets.contains(options.opset) else {
            let range = ONNXExportOptions.supportedOpsets
            throw .options("--opset \(options.opset) is not supported (\(range.lowerBound) to \(range.upperBound))")
        }
        var translation = OpTranslation(emitter: GraphEmitter(name: "idlevit", opset: options.opset), graph: graph)
        for input in graph.inputs {
            try translation.emitter.addInput(try valueInfo(input.name, input.type))
        }
        var used = Set<String>()
        for node in graph.nodes { used.formUnion(node.inputs) }
        for constant in graph.constants where used.contains(constant.name) {
            guard let tensor = constant.tensor else {
                throw .unsupported(node: constant.name, reason: "is a weight without data (a graph read back without its weights)")
            }
            try translation.emitter.addInitializer(ONNXInitializerDraft(name: constant.name, dims: constant.shape, payload: .weight(tensor)))
        }
        for node in graph.nodes { try translation.translate(node) }
        var outputs = graph.outputs
        if options.selectionOutputs {
            outputs += graph.nodes.filter { $0.kind == .tokenSelect && !outputs.contains($0.name) }.map(\.name)
        }
        for output in outputs {
            guard let type = graph.type(of: output) else { throw .unsupported(node: output, reason: "is an output the graph does not define") }
            translation.emitter.addOutput(try valueInfo(output, type))
        }
        var metadata: [(key: String, value: String)] = []
        for key in graph.metadata.keys.sorted() { metadata.append(("idlevit." + key, graph.metadata[key]!)) }
        return ONNXModelDraft(irVersion: ONNXExportOptions.irVersion(opset: options.opset), opset: options.opset,
                              producerName: options.producerName, producerVersion: options.producerVersion,
                              docString: "Exported by idlevit from its IR graph: DeiT" + (graph.nodes.contains { $0.kind == .tokenSelect } ? " with IdleViT token selection" : ""),
                              metadata: metadata, graph: translation.emitter.graph)
    }

    /// A graph input or output: Float32 activations stay float, token indices become int64.
    static func valueInfo(_ name: String, _ type: ValueType) throws(ONNXExportError) -> ONNXValueInfo {
        let element: ONNXElementType
        switch type.elementType {
        case .f32: element = .float
        case .i32, .i64: element = .int64
        default: throw .unsupported(node: name, reason: "has element type \(type.elementType), which the export does not write")
        }
        return ONNXValueInfo(name: name, elementType: element, shape: type.shape.map { dim in
            switch dim {
            case .batch: return .parameter(batchParameter)
            case .fixed(let n): return .value(n)
            }
        })
    }
}
