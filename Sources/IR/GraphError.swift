/// What is wrong with a graph.
public enum GraphError: Error, CustomStringConvertible, Equatable {
    case invalidNode(op: String, message: String)
    case inNode(node: String, GraphErrorBox)
    case duplicateName(String)
    case undefinedValue(node: String, value: String)
    case typeMismatch(node: String, declared: String, inferred: String)
    case missingWeights(String)
    case badOutput(String)
    case malformedJSON(String)

    public var description: String {
        switch self {
        case .invalidNode(let op, let message): return "\(op): \(message)"
        case .inNode(let node, let inner): return "node '\(node)': \(inner.error)"
        case .duplicateName(let name): return "value '\(name)' is defined twice"
        case .undefinedValue(let node, let value): return "node '\(node)' reads '\(value)', which is not defined before it"
        case .typeMismatch(let node, let declared, let inferred): return "node '\(node)' declares \(declared) but its op produces \(inferred)"
        case .missingWeights(let name): return "constant '\(name)' has no weights or the wrong element count"
        case .badOutput(let name): return "graph output '\(name)' is not a value of the graph"
        case .malformedJSON(let message): return "IR JSON: \(message)"
        }
    }
}

/// Boxes a nested error so `GraphError` stays a value type.
public final class GraphErrorBox: Equatable, Sendable {
    public let error: GraphError
    public init(_ error: GraphError) { self.error = error }
    public static func == (lhs: GraphErrorBox, rhs: GraphErrorBox) -> Bool { lhs.error == rhs.error }
}
