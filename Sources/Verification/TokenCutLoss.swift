import Foundation
import IR
import Interpreter
import ModelDescription

/// The token cut loss of IDLEVIT.md §5, a diagnostic of how cleanly a selection cuts the
/// attention graph: per idle layer and image, with W the row softmax of the head-averaged,
/// scaled attention logits over all N tokens (from LN1 of the block input),
/// inter_i = sum_j |m_i - m_j| W_ij (class column zeroed), intra_i = sum_j m_i m_j W_ij,
/// L_inter = mean_i inter_i^2, L_intra = mean_i (intra_i - m_i)^2, total = their sum.
/// Computed in Double from the Float32 LN1 rows and weights.
public enum TokenCutLoss {
    public struct Value: Sendable {
        public var inter: Double
        public var intra: Double
        public var total: Double { inter + intra }
    }

    /// The activations a run must capture for these idle layers.
    public static func requiredActivations(layers: [Int]) -> Set<String> {
        Set(layers.flatMap { [ActivationName.blockPart($0, .norm1).name, ActivationName.selected($0).name] })
    }

    /// Cut loss of each idle layer, in layer order, skipping layers that are not idle.
    public static func compute(graph: Graph, activations: [String: Activation], layers: [Int]) -> [(layer: Int, values: [Value])] {
        layers.compactMap { layer in compute(graph: graph, activations: activations, layer: layer).map { (layer, $0) } }
    }

    /// Cut loss of one idle layer for every image, or nil when the layer is not idle.
    public static func compute(graph: Graph, activations: [String: Activation], layer: Int) -> [Value]? {
        guard let select = graph.node(named: ActivationName.selected(layer).name), case .tokenSelect(let selection) = select.op,
              let weight = graph.constant(named: select.inputs[1])?.tensor,
              let norm = activations[ActivationName.blockPart(layer, .norm1).name]?.floatTensor,
              case .indices(let selectedShape, let selected)? = activations[ActivationName.selected(layer).name] else { return nil }
        let (batch, tokens, channels) = (norm.shape[0], norm.shape[1], norm.shape[2])
        let heads = selection.heads
        let bias = select.inputs.count > 2 ? graph.constant(named: select.inputs[2])?.tensor : nil
        let d = channels / heads
        let scale = 1 / Double(d).squareRoot()
        var results: [Value] = []
        var q = [Double](repeating: 0, count: tokens * channels)
        var k = [Double](repeating: 0, count: tokens * channels)
        for b in 0..<batch {
            let rows = norm.pointer + b * tokens * channels
            for t in 0..<tokens {
                for o in 0..<channels {
                    var sq = bias.map { Double($0.pointer[o]) } ?? 0, sk = bias.map { Double($0.pointer[channels + o]) } ?? 0
                    let wq = weight.pointer + o * channels, wk = weight.pointer + (channels + o) * channels
                    for i in 0..<channels {
                        let x = Double(rows[t * channels + i])
                        sq += Double(wq[i]) * x
                        sk += Double(wk[i]) * x
                    }
                    q[t * channels + o] = sq
                    k[t * channels + o] = sk
                }
            }
            var mask = [Double](repeating: 0, count: tokens)
            for s in 0..<selectedShape[1] { mask[Int(selected[b * selectedShape[1] + s])] = 1 }
            var interSum = 0.0, intraSum = 0.0
            var row = [Double](repeating: 0, count: tokens)
            for i in 0..<tokens {
                for j in 0..<tokens {
                    var logit = 0.0
                    for c in 0..<channels { logit += q[i * channels + c] * k[j * channels + c] }
                    // Mean over heads of per-head dot products = full dot / heads.
                    row[j] = logit * scale / Double(heads)
                }
                let maximum = row.max() ?? 0
                var total = 0.0
                for j in 0..<tokens { row[j] = Foundation.exp(row[j] - maximum); total += row[j] }
                var inter = 0.0, intra = 0.0
                for j in 0..<tokens {
                    let w = row[j] / total
                    if j != 0 { inter += abs(mask[i] - mask[j]) * w }
                    intra += mask[i] * mask[j] * w
                }
                interSum += inter * inter
                intraSum += (intra - mask[i]) * (intra - mask[i])
            }
            results.append(Value(inter: interSum / Double(tokens), intra: intraSum / Double(tokens)))
        }
        return results
    }

    /// The values as activations named like the reference files: `blocks.{i}.cut_loss.{inter,intra,total}`, each [B].
    public static func activations(layer: Int, _ values: [Value]) -> [String: Activation] {
        func name(_ part: BlockPart) -> String { ActivationName.blockPart(layer, part).name }
        return [
            name(.cutLossInter): .floats(FloatTensor(shape: [values.count], values: values.map { Float($0.inter) })),
            name(.cutLossIntra): .floats(FloatTensor(shape: [values.count], values: values.map { Float($0.intra) })),
            name(.cutLoss): .floats(FloatTensor(shape: [values.count], values: values.map { Float($0.total) })),
        ]
    }
}
