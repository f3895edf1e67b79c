import IR

/// A graph-to-graph rewrite.
public protocol GraphPass {
    var name: String { get }
    func run(_ graph: Graph) throws -> Graph
}

/// Runs passes in order. In debug builds the graph is re-validated after every pass, so a
/// pass that breaks an invariant is caught where it happens, not in a kernel later.
public struct PassPipeline {
    public var passes: [any GraphPass]

    public init(_ passes: [any GraphPass]) { self.passes = passes }

    public func run(_ graph: Graph) throws -> Graph {
        var current = graph
        for pass in passes {
            current = try pass.run(current)
            #if DEBUG
            do {
                try GraphValidator.validate(current)
            } catch {
                throw PassError.brokeInvariant(pass: pass.name, error.description)
            }
            #endif
        }
        return current
    }
}

public enum PassError: Error, CustomStringConvertible {
    case brokeInvariant(pass: String, String)

    public var description: String {
        switch self {
        case .brokeInvariant(let pass, let message): return "pass \(pass) produced an invalid graph: \(message)"
        }
    }
}
