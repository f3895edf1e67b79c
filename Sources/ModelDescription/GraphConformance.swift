import IR

/// Whether a stored graph (a bundle's) is the model its weights describe: node for node the
/// dense graph the description builds, except that any block may be an idle block
/// (`IdleBlock.match`) standing for exactly the dense block at its place. Reading a stored
/// graph this way checks it against the description without running the rewrite again.
public enum GraphConformance {
    public struct Mismatch: Error, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// The idle layers of `stored`, with their selections, when it conforms to `dense`.
    public static func idleLayers(of stored: Graph, dense: Graph) throws(Mismatch) -> [Int: TokenSelect] {
        guard stored.inputs == dense.inputs else { throw Mismatch(message: "the graph's input differs from the model's") }
        guard stored.outputs == dense.outputs else { throw Mismatch(message: "the graph's outputs differ from the model's") }
        guard stored.constants.map(\.name) == dense.constants.map(\.name) else {
            throw Mismatch(message: "the graph's constants are not the model's tensors in order")
        }
        var idle: [Int: TokenSelect] = [:]
        var s = 0, d = 0
        let storedNodes = stored.nodes, denseNodes = dense.nodes
        while s < storedNodes.count || d < denseNodes.count {
            guard s < storedNodes.count, d < denseNodes.count else {
                throw Mismatch(message: "the graph has \(storedNodes.count) nodes where the model's \(s < storedNodes.count ? "ends" : "goes on")")
            }
            if storedNodes[s].kind == .layerNorm, let block = IdleBlock.match(nodes: storedNodes, at: s) {
                let expected = denseNodes[d..<min(denseNodes.count, d + block.dense.count)]
                guard expected.count == block.dense.count, zip(block.dense, expected).allSatisfy(sameComputation) else {
                    throw Mismatch(message: "idle block \(block.index) does not compute the model's block at its place")
                }
                idle[block.index] = block.selection
                s += block.length
                d += block.dense.count
                continue
            }
            let (a, b) = (storedNodes[s], denseNodes[d])
            guard a == b else {
                throw Mismatch(message: "node '\(a.name.escapedForMessage)' (\(a.kind.rawValue)) where the model has '\(b.name)' (\(b.kind.rawValue))"
                               + (a.name == b.name && a.kind == b.kind ? " with other inputs, attributes or type" : ""))
            }
            s += 1
            d += 1
        }
        return idle
    }

    /// Same name, op (with attributes) and inputs: inside an idle block the types have S rows
    /// instead of N, which the graph validator has already checked.
    private static func sameComputation(_ a: Node, _ b: Node) -> Bool {
        a.name == b.name && a.op == b.op && a.inputs == b.inputs
    }
}
