import IR
import Interpreter

/// The smallest selection margin of each idle layer over the images of a run, so `verify` can
/// say whether a selection that differs from the reference was a near tie (float32 rounding in
/// PyTorch or ONNX Runtime decides it) or a bug (it differs at a clear margin).
///
/// Margin of one image = (score of the K-th token picked - score of the first left out) /
/// max |score|, the same definition as Fixtures/README.md's, from the interpreter's own
/// double-precision scores of the captured LN1 rows.
public enum SelectionMargins {
    public struct Layer: Sendable {
        /// The selection's value name, `blocks.{i}.selected`.
        public var name: String
        public var keep: Int
        /// nil when the layer keeps no image token or all of them (nothing to tie).
        public var smallest: Double?
        /// The image (batch index) with the smallest margin.
        public var image: Int?
    }

    /// Margins below this are within the rounding differences between float32 engines.
    public static let nearTie = 1e-5

    /// The activations a run must capture: each token_select's input (the block's LN1 output).
    public static func requiredActivations(graph: Graph) -> Set<String> {
        Set(graph.nodes.filter { $0.kind == .tokenSelect }.map { $0.inputs[0] })
    }

    /// One entry per token_select node, in graph order.
    public static func compute(graph: Graph, activations: [String: Activation]) -> [Layer] {
        graph.nodes.compactMap { node in
            guard case .tokenSelect(let select) = node.op, let x = activations[node.inputs[0]]?.floatTensor,
                  let weight = graph.constant(named: node.inputs[1])?.tensor else { return nil }
            let bias = node.inputs.count > 2 ? graph.constant(named: node.inputs[2])?.tensor : nil
            let margins = SelectionMargin.relative(x: x, weight: weight, bias: bias, heads: select.heads, keep: select.keep, prefix: select.prefix)
            let smallest = margins.enumerated().compactMap { image, margin in margin.map { (image, $0) } }.min { $0.1 < $1.1 }
            return Layer(name: node.name, keep: select.keep, smallest: smallest?.1, image: smallest?.0)
        }
    }
}
