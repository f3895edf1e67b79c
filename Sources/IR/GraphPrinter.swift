/// The readable text form of a graph (`idlevit inspect --graph`):
///
///     input %pixel_values: f32[B, 3, 32, 32]
///     const @cls_token: f32[1, 1, 128]
///     %patch_embed: f32[B, 16, 128] = patch_embed(%pixel_values, @patch_embed.proj.weight, ...) {patch: 8}
///     output %logits
///
/// `%` marks values computed per image, `@` marks weights.
public enum GraphPrinter {
    public static func text(_ graph: Graph, includeConstants: Bool = true) -> String {
        var lines: [String] = []
        if let architecture = graph.architecture { lines.append("# \(architecture)") }
        for (key, value) in graph.metadata.sorted(by: { $0.key < $1.key }) where value.count <= 200 {
            lines.append("# \(key): \(value)")
        }
        for input in graph.inputs { lines.append("input %\(input.name): \(input.type)") }
        let constantNames = Set(graph.constants.map(\.name))
        if includeConstants {
            for constant in graph.constants {
                let stored = constant.sourceType == .f32 ? "" : "  (stored \(constant.sourceType))"
                lines.append("const @\(constant.name): \(constant.type)\(stored)")
            }
        } else {
            lines.append("# \(graph.constants.count) constants, \(graph.parameterCount) parameters")
        }
        for node in graph.nodes {
            let operands = node.inputs.map { constantNames.contains($0) ? "@" + $0 : "%" + $0 }.joined(separator: ", ")
            var line = "%\(node.name): \(node.type) = \(node.kind.rawValue)(\(operands))"
            let attributes = node.op.attributeList
            if !attributes.isEmpty {
                line += " {" + attributes.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
            }
            lines.append(line)
        }
        for output in graph.outputs { lines.append("output %\(output)") }
        return lines.joined(separator: "\n") + "\n"
    }
}
