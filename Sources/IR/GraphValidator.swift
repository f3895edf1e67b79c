/// Checks the invariants every pass and importer must keep: unique names, values defined
/// before use, node types equal to what their op infers, weights present with the declared
/// size, outputs that exist, and token indices that index what they were made for.
public enum GraphValidator {
    public static func validate(_ graph: Graph, requireWeights: Bool = true) throws(GraphError) {
        var known: [String: ValueType] = [:]
        var producers: [String: Node] = [:]
        for input in graph.inputs {
            guard known[input.name] == nil else { throw .duplicateName(input.name) }
            known[input.name] = input.type
        }
        for constant in graph.constants {
            guard known[constant.name] == nil else { throw .duplicateName(constant.name) }
            known[constant.name] = constant.type
            if requireWeights {
                guard let tensor = constant.tensor, tensor.shape == constant.shape else { throw .missingWeights(constant.name) }
            }
        }
        for node in graph.nodes {
            var inputTypes: [ValueType] = []
            for input in node.inputs {
                guard let type = known[input] else { throw .undefinedValue(node: node.name, value: input) }
                inputTypes.append(type)
            }
            let inferred: ValueType
            do {
                inferred = try node.op.outputType(inputTypes)
            } catch {
                throw .inNode(node: node.name, GraphErrorBox(error))
            }
            guard inferred == node.type else {
                throw .typeMismatch(node: node.name, declared: node.type.description, inferred: inferred.description)
            }
            guard known[node.name] == nil else { throw .duplicateName(node.name) }
            if node.kind == .gatherTokens || node.kind == .scatterTokens {
                try checkTokenIndex(node, producers: producers, known: known)
            }
            known[node.name] = node.type
            producers[node.name] = node
        }
        for output in graph.outputs where known[output] == nil { throw .badOutput(output) }
    }

    /// The kernels trust token indices without checking each one (a gather, a scatter, and a
    /// product reading gathered rows in place), so a graph may only index `x[B, N, C]` with
    /// the positions a `token_select` chose among N tokens: any other i32 value (a graph
    /// input, a selection made over more tokens) could point past x.
    private static func checkTokenIndex(_ node: Node, producers: [String: Node],
                                        known: [String: ValueType]) throws(GraphError) {
        // The op's type check has already seen two inputs of known types.
        guard node.inputs.count >= 2, let x = known[node.inputs[0]] else { return }
        // A token count that is not fixed (the batch's) is refused too: no selection is made for it.
        guard let tokens = x.extent(1), let select = producers[node.inputs[1]], select.kind == .tokenSelect,
              let scored = select.inputs.first.flatMap({ known[$0] }), scored.extent(1) == tokens,
              scored.shape.first == x.shape.first else {
            throw .inNode(node: node.name, GraphErrorBox(.invalidNode(
                op: node.kind.rawValue, message: "its index must be a token_select's choice among the tokens of its input")))
        }
    }
}

/// Adds nodes with their types inferred, so builders and passes never state a type by hand.
public struct GraphBuilder {
    public var graph: Graph

    public init(_ graph: Graph) { self.graph = graph }

    @discardableResult
    public mutating func add(_ name: String, _ op: Op, _ inputs: [String]) throws(GraphError) -> String {
        var types: [ValueType] = []
        for input in inputs {
            guard let type = typeOf(input) else { throw .undefinedValue(node: name, value: input) }
            types.append(type)
        }
        let type: ValueType
        do {
            type = try op.outputType(types)
        } catch {
            throw .inNode(node: name, GraphErrorBox(error))
        }
        graph.nodes.append(Node(name, op, inputs, type: type))
        nodeTypes[name] = type
        return name
    }

    private var nodeTypes: [String: ValueType] = [:]

    private func typeOf(_ name: String) -> ValueType? {
        nodeTypes[name] ?? graph.type(of: name)
    }
}
