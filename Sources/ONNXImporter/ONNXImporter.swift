import IR
import Importers
import ModelDescription

/// An initializer as the file stores it, for `inspect`.
public struct ONNXInitializer: Sendable {
    public var name: String
    public var dtype: String
    public var shape: [Int]
    public var bytes: Int
    /// "raw_data", "float_data", ..., or "external FILE".
    public var storage: String
}

/// What the ONNX importer hands to the DeiT recogniser, plus what `inspect` shows.
public struct ONNXImport: Sendable {
    /// Weights under canonical timm names ([out, in] linears), format `.onnx`.
    public var weights: WeightSet
    /// Heads (from the attention Reshape) and layer-norm epsilon, as found in the graph.
    public var options: RecognitionOptions
    public var opset: Int
    public var irVersion: Int
    public var producer: String
    /// Op types by number of nodes, most frequent first.
    public var opHistogram: [(op: String, count: Int)]
    public var initializers: [ONNXInitializer]
    public var nodeCount: Int

    /// Format facts for `inspect`: versions, ops, what the graph states, where the bytes are.
    public var details: [(String, String)] {
        var details: [(String, String)] = [
            ("ONNX", "opset \(opset), IR version \(irVersion), producer '\(producer)', \(nodeCount) nodes"),
            ("ONNX ops", opHistogram.map { "\($0.op) \($0.count)" }.joined(separator: ", ")),
            ("ONNX graph", "heads \(options.heads ?? 0) (attention Reshape), layer norm eps \(options.layerNormEps ?? 0)"
                + (options.skipLam.map { ", skip_lam \(formatDouble($0)) (residual Div)" } ?? "")),
        ]
        var storage: [String: Int] = [:]
        for initializer in initializers { storage[initializer.storage, default: 0] += 1 }
        details.append(("ONNX storage", storage.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }.joined(separator: ", ")))
        return details
    }
}

/// ONNX file -> DeiT weights under canonical names. See `DeiTMatcher` for how the structure
/// is recognised and `ONNXReader` for how the protobuf is read.
public enum ONNXImporter {
    public static func load(path: String) throws(ImportError) -> ONNXImport {
        var (imported, pending) = try recognise(path: path)
        // The graph is gone: only the matched weights hold the decoded initializers now, so
        // each MatMul weight's [in, out] original is freed as soon as its transpose exists.
        pending.reverse()
        while let (name, weight) = pending.popLast() {
            imported.weights.append(Weight(name: name, tensor: weight.canonicalTensor, sourceType: weight.sourceType))
        }
        return imported
    }

    /// What survives the graph: the import without its weights, and the matched weights (not
    /// yet transposed) to fill it with.
    private static func recognise(path: String) throws(ImportError) -> (ONNXImport, [(name: String, weight: CanonicalWeight)]) {
        let file = displayName(path)
        let model = try ONNXReader.read(path: path)
        let analysis = try GraphAnalysis(model: model, file: file)
        guard analysis.problems.isEmpty else { throw .unsupportedNodes(file: file, nodes: analysis.problems) }

        var matcher = DeiTMatcher(analysis: analysis)
        let result: DeiTMatcher.Result
        do {
            result = try matcher.match()
        } catch {
            let place = error.node.map { analysis.describe($0) + ": " } ?? ""
            throw .unsupportedNodes(file: file, nodes: [place + error.message])
        }
        // Everything that computes must be part of the recognised structure.
        let leftovers = analysis.nodes.filter { !analysis.folded.contains($0.index) && !matcher.visited.contains($0.index) }
        guard leftovers.isEmpty else {
            throw .unsupportedNodes(file: file, nodes: leftovers.map {
                analysis.describe($0) + ": not part of the recognised DeiT structure" + ShapeInference.position($0, analysis)
            })
        }
        var histogram: [String: Int] = [:]
        for node in model.graph.nodes { histogram[node.opType, default: 0] += 1 }
        let initializers = model.graph.initializers.map {
            ONNXInitializer(name: $0.name, dtype: $0.dataType.shortName, shape: $0.shape, bytes: $0.storedBytes, storage: $0.storage)
        }
        var options = RecognitionOptions(heads: result.heads, layerNormEps: shortestDecimal(result.layerNormEps))
        options.skipLam = result.skipLam
        let imported = ONNXImport(weights: WeightSet(file: path, format: .onnx, metadata: model.metadata),
                                  options: options,
                                  opset: model.opset, irVersion: model.irVersion, producer: model.producer,
                                  opHistogram: histogram.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { ($0.key, $0.value) },
                                  initializers: initializers, nodeCount: model.graph.nodes.count)
        return (imported, result.weights)
    }

    /// The epsilon as written in the model's source: ONNX stores it as a Float32, so 1e-6
    /// arrives as 9.99999997e-07; the shortest decimal that rounds to the same Float is 1e-06.
    static func shortestDecimal(_ value: Double) -> Double {
        Double(Float(value).description) ?? value
    }
}
