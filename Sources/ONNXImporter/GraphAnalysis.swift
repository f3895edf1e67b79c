import IR
import Importers

/// What is known about one value of the ONNX graph.
enum ValueKind {
    /// An initializer, reached directly or through `Identity` aliases (the exporter merges
    /// equal tensors of a fresh model behind Identity nodes).
    case weight(ONNXTensor)
    /// A small constant: a `Constant` node or a folded shape computation.
    case constant(SmallTensor)
    /// Computed from the graph input (or from weights by an op we do not fold).
    case computed
}

struct ValueFact {
    var kind: ValueKind
    var shape: [Int]
    /// The node that computes the value; nil for the graph input and initializers.
    var producer: Int?
}

/// The ONNX graph with every value's shape and, where it is constant, its value. Shape-only
/// subgraphs (Shape, Gather, Unsqueeze, Concat, ConstantOfShape, Expand, Where, Cast, Equal,
/// arithmetic on shapes) are folded into constants here, so the DeiT matcher sees only the
/// ops that compute on tensors. A symbolic batch dimension is taken as 1: batch never decides
/// a DeiT's structure, and torch's fixed-shape exports bake in batch 1 anyway.
struct GraphAnalysis {
    let model: ONNXModel
    private(set) var facts: [String: ValueFact] = [:]
    private(set) var consumers: [String: [Int]] = [:]
    /// Nodes folded away (constants, shape arithmetic, Identity aliases).
    private(set) var folded = Set<Int>()
    /// Identity outputs -> the value they alias, so that dataflow is followed through them.
    private(set) var aliases: [String: String] = [:]
    /// The node that writes each value, known or not (for saying where a node sits).
    private(set) var definedBy: [String: Int] = [:]
    private(set) var inputName = ""
    private(set) var inputShape: [Int] = []
    /// Ops that are not supported at all, and nodes whose shapes do not work out.
    private(set) var problems: [String] = []

    var nodes: [ONNXNode] { model.graph.nodes }
    var opset: Int { model.opset }

    init(model: ONNXModel, file: String) throws(ImportError) {
        self.model = model
        for tensor in model.graph.initializers {
            guard facts[tensor.name] == nil else {
                throw .invalidFile(file: file, format: "ONNX", rule: "initializer '\(tensor.name)' is defined twice")
            }
            if let problem = Self.shapeProblem(tensor.shape) {
                throw .invalidTensor(file: file, tensor: tensor.name, rule: "shape \(describeShape(tensor.shape)) \(problem)")
            }
            facts[tensor.name] = ValueFact(kind: .weight(tensor), shape: tensor.shape, producer: nil)
        }
        let inputs = model.graph.inputs.filter { facts[$0.name] == nil }
        guard inputs.count == 1, let input = inputs.first else {
            throw .invalidFile(file: file, format: "ONNX", rule: "the graph has \(inputs.count) inputs besides initializers; a DeiT has one (the image batch)")
        }
        inputName = input.name
        inputShape = try Self.inputShape(input, file: file)
        facts[input.name] = ValueFact(kind: .computed, shape: inputShape, producer: nil)

        // A node that cannot be analysed leaves its outputs unknown; nodes downstream of it are
        // skipped silently, so the one error lists causes, not their consequences.
        var unknown = Set<String>()
        for node in model.graph.nodes {
            for output in node.outputs where !output.isEmpty { definedBy[output] = definedBy[output] ?? node.index }
            if node.inputs.contains(where: { unknown.contains($0) }) {
                unknown.formUnion(node.outputs)
                if !Self.knownOps.contains(node.opType) || !node.domain.isEmpty {
                    problems.append("\(describe(node)): op \(node.opType) is not supported" + ShapeInference.position(node, self))
                }
                continue
            }
            if let problem = analyse(node) {
                problems.append(problem)
                unknown.formUnion(node.outputs.filter { facts[$0] == nil })
            }
            if foldedElements > Self.maximumFoldedElements {
                problems.append("\(describe(node)): the graph's constant computations exceed \(Self.maximumFoldedElements) values; analysis stopped here")
                break
            }
        }
    }

    /// Why a shape cannot be a value of a graph we import, or nil when it can: at most
    /// `Limits.rank` dimensions, none negative, and the product of the non-zero ones within
    /// `Limits.elementCount`. Every shape that becomes a fact passes this gate, so the shape
    /// arithmetic downstream (Concat and Split sums, Conv extents, broadcast products) works
    /// on extents of at most 2^34 and cannot overflow, and an `Expand` to [2^62] stops here.
    static func shapeProblem(_ shape: [Int]) -> String? {
        guard Limits.rank.contains(shape.count) else { return "has \(shape.count) dimensions, over the limit of \(Limits.rank.maximum)" }
        do {
            let nonZero = try Checked.elementCount(shape.filter { $0 != 0 }, "its element count")
            try Limits.elementCount.check(nonZero, "its element count")
        } catch {
            return error.description
        }
        return nil
    }

    /// Shape arithmetic of a DeiT folds to a few thousand values; a hostile chain of large
    /// folds must not run for hours.
    static let maximumFoldedElements = 1 << 24
    private var foldedElements = 0

    /// Every op the importer understands, folded or computed.
    static let knownOps = ShapeInference.supported.union(ConstantFolder.foldable).union(["Identity", "Shape", "Size"])

    /// `name (Op, opset N)`, how every message names a node.
    func describe(_ node: ONNXNode) -> String {
        "\(node.label) (\(node.domain.isEmpty ? "" : node.domain + ".")\(node.opType), opset \(opset))"
    }

    func fact(_ name: String) -> ValueFact? { facts[name] }

    /// The value an Identity chain starts from.
    func resolve(_ name: String) -> String { aliases[name] ?? name }

    /// A node's inputs with Identity aliases resolved ("" for absent optional inputs).
    func inputs(of node: ONNXNode) -> [String] { node.inputs.map(resolve) }

    func producer(of value: String) -> ONNXNode? {
        facts[value]?.producer.map { nodes[$0] }
    }

    /// Nodes that compute with `value`, leaving out folded shape arithmetic.
    func computingConsumers(of value: String) -> [ONNXNode] {
        (consumers[resolve(value)] ?? []).filter { !folded.contains($0) }.map { nodes[$0] }
    }

    /// The value as a small constant: a folded constant, or a small initializer.
    func constant(_ value: String) -> SmallTensor? {
        switch facts[value]?.kind {
        case .constant(let small)?: return small
        case .weight(let tensor)? where tensor.count <= SmallTensor.maximumCount:
            return SmallTensor(shape: tensor.shape, values: tensor.doubles, isInteger: tensor.dataType.isInteger)
        default: return nil
        }
    }

    /// The value as weights: an initializer, a large Constant, or a small float constant.
    func weight(_ value: String) -> ONNXTensor? {
        switch facts[value]?.kind {
        case .weight(let tensor)?: return tensor
        case .constant(let small)? where !small.isInteger:
            return ONNXTensor(name: value, dataType: .float, shape: small.shape,
                              values: .floats(FloatTensor(shape: small.shape, values: small.values.map { Float($0) })),
                              storedBytes: small.count * 4, storage: "Constant")
        default: return nil
        }
    }

    private static func inputShape(_ input: ONNXValueInfo, file: String) throws(ImportError) -> [Int] {
        guard input.elementType == 1 || input.elementType == 0 else {
            throw .invalidFile(file: file, format: "ONNX", rule: "graph input '\(input.name)' is \(ONNXDataType.describe(input.elementType)), not float")
        }
        guard let dims = input.dimensions, dims.count == 4 else {
            throw .invalidFile(file: file, format: "ONNX", rule: "graph input '\(input.name)' must be a 4-D image batch [N, C, H, W] with a declared shape")
        }
        var shape: [Int] = []
        for (axis, dim) in dims.enumerated() {
            switch dim {
            case .fixed(let value) where value > 0 && value <= 1 << 16: shape.append(value)
            case .symbolic, .unknown, .fixed(0):
                guard axis == 0 else {
                    throw .invalidFile(file: file, format: "ONNX", rule: "graph input '\(input.name)' has a dynamic dimension \(axis); only the batch may be dynamic")
                }
                shape.append(1)
            default:
                throw .invalidFile(file: file, format: "ONNX", rule: "graph input '\(input.name)' dimension \(axis) is out of range")
            }
        }
        return shape
    }

    /// Records the facts of one node's outputs; returns a problem when it has none.
    private mutating func analyse(_ node: ONNXNode) -> String? {
        for input in node.inputs where !input.isEmpty {
            guard facts[input] != nil else { return "\(describe(node)): input '\(input)' is not defined before the node" }
            consumers[resolve(input), default: []].append(node.index)
        }
        for output in node.outputs where !output.isEmpty && facts[output] != nil {
            return "\(describe(node)): output '\(output)' is defined twice"
        }
        guard node.domain.isEmpty else { return "\(describe(node)): ops of domain '\(node.domain)' are not supported" }
        let inputs = node.inputs.map { $0.isEmpty ? nil : facts[$0] }

        if node.opType == "Identity", let source = inputs.first ?? nil, let output = node.outputs.first {
            folded.insert(node.index)
            facts[output] = ValueFact(kind: source.kind, shape: source.shape, producer: source.producer)
            aliases[output] = resolve(node.inputs[0])
            return nil
        }
        // A Constant node holding a float tensor beyond a few values is a weight (cls_token,
        // a linear's matrix) and keeps its identity, like an initializer.
        if node.opType == "Constant", case .tensor(let tensor)? = node.attributes["value"], let output = node.outputs.first,
           tensor.dataType.floatElementType != nil, tensor.count > ConstantFolder.largestFoldedWeight {
            folded.insert(node.index)
            if let problem = Self.shapeProblem(tensor.shape) { return "\(describe(node)): constant shape \(describeShape(tensor.shape)) \(problem)" }
            var named = tensor
            named.name = output
            facts[output] = ValueFact(kind: .weight(named), shape: tensor.shape, producer: nil)
            return nil
        }
        if let constant = ConstantFolder.fold(node, inputs: inputs, analysis: self) {
            switch constant {
            case .success(let values):
                guard values.count == node.outputs.count else { return "\(describe(node)): expected \(values.count) outputs" }
                for value in values {
                    if let problem = Self.shapeProblem(value.shape) { return "\(describe(node)): output shape \(describeShape(value.shape)) \(problem)" }
                }
                folded.insert(node.index)
                foldedElements += values.reduce(0) { $0 + $1.count }
                for (output, value) in zip(node.outputs, values) {
                    facts[output] = ValueFact(kind: .constant(value), shape: value.shape, producer: node.index)
                }
                return nil
            case .failure(let problem):
                return "\(describe(node)): \(problem.message)"
            }
        }
        switch ShapeInference.outputShapes(node, inputs: inputs, analysis: self) {
        case .success(let shapes):
            for shape in shapes {
                if let problem = Self.shapeProblem(shape) { return "\(describe(node)): output shape \(describeShape(shape)) \(problem)" }
            }
            for (output, shape) in zip(node.outputs, shapes) where !output.isEmpty {
                facts[output] = ValueFact(kind: .computed, shape: shape, producer: node.index)
            }
            return nil
        case .failure(let problem):
            return "\(describe(node)): \(problem.message)"
        }
    }
}

/// A reason a node could not be folded or shaped, as text for the one error message.
struct NodeProblem: Error {
    var message: String
    init(_ message: String) { self.message = message }
}
