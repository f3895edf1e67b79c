/// A named graph input (the image batch).
public struct GraphInput: Hashable, Sendable {
    public var name: String
    public var type: ValueType

    public init(name: String, type: ValueType) {
        self.name = name
        self.type = type
    }
}

/// A weight: a named Float32 constant. `tensor` points into mapped or owned storage; it is
/// nil only for a graph read back from JSON without its weights.
public struct Constant: Sendable, Named {
    public var name: String
    public var shape: [Int]
    /// What the checkpoint stored before conversion to Float32.
    public var sourceType: ElementType
    public var tensor: FloatTensor?

    public init(name: String, shape: [Int], sourceType: ElementType = .f32, tensor: FloatTensor?) {
        self.name = name
        self.shape = shape
        self.sourceType = sourceType
        self.tensor = tensor
    }

    public init(name: String, tensor: FloatTensor, sourceType: ElementType = .f32) {
        self.init(name: name, shape: tensor.shape, sourceType: sourceType, tensor: tensor)
    }

    public var type: ValueType { ValueType(.f32, shape.map(Dim.fixed)) }
}

/// One operation. Its output is a value named after the node, which carries the timm module
/// name where one exists (`blocks.3`, `norm`, `logits`), so activations line up with
/// PyTorch reference files.
public struct Node: Hashable, Sendable {
    public var name: String
    public var op: Op
    public var inputs: [String]
    public var type: ValueType

    public init(_ name: String, _ op: Op, _ inputs: [String], type: ValueType) {
        self.name = name
        self.op = op
        self.inputs = inputs
        self.type = type
    }

    public var kind: OpKind { op.kind }
}

/// A small typed dataflow graph: inputs, named constants, nodes in execution order
/// (each reads only inputs, constants and earlier nodes), and named outputs.
public struct Graph: Sendable {
    public var inputs: [GraphInput]
    public private(set) var constants: NamedList<Constant>
    public var nodes: [Node]
    public var outputs: [String]
    /// The recognised architecture, when the graph is a DeiT.
    public var architecture: ModelArchitecture?
    /// Free-form provenance and schedule facts (string to string), carried into bundles.
    public var metadata: [String: String]

    public init(inputs: [GraphInput], constants: [Constant] = [], nodes: [Node] = [], outputs: [String] = [],
                architecture: ModelArchitecture? = nil, metadata: [String: String] = [:]) {
        self.inputs = inputs
        self.constants = NamedList(constants)
        self.nodes = nodes
        self.outputs = outputs
        self.architecture = architecture
        self.metadata = metadata
    }

    /// Adds a constant, or replaces the one of the same name in place.
    public mutating func addConstant(_ constant: Constant) { constants.append(constant) }

    public func constant(named name: String) -> Constant? { constants[named: name] }

    public func node(named name: String) -> Node? { nodes.first { $0.name == name } }

    /// The type of any value: input, constant or node output.
    public func type(of name: String) -> ValueType? {
        if let input = inputs.first(where: { $0.name == name }) { return input.type }
        if let constant = constant(named: name) { return constant.type }
        return nodes.last(where: { $0.name == name })?.type
    }

    /// Total number of weight elements.
    public var parameterCount: Int { constants.reduce(0) { $0 + $1.shape.elementCount } }

    /// Op counts, for summaries.
    public var opHistogram: [(OpKind, Int)] {
        var counts: [OpKind: Int] = [:]
        for node in nodes { counts[node.kind, default: 0] += 1 }
        return OpKind.allCases.compactMap { op in counts[op].map { (op, $0) } }
    }
}
