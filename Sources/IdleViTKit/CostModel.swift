import IR
import ModelDescription
import Passes

/// Multiply-accumulates of a ViT-family model, dense or under an idle schedule (IDLEVIT.md
/// §4): matmuls, linears, the patch convolution, and LayerScale's per-channel multiplies (one
/// per token and channel of each branch, DeiT-III); norms, softmax and GELU are not counted.
public enum CostModel {
    public struct Layer: Sendable {
        public var name: String
        /// Image tokens this layer computes (all Np for dense layers).
        public var keptTokens: Int
        public var macs: Double
        public var idle: Bool
    }

    public struct Summary: Sendable {
        public var layers: [Layer]
        public var macs: Double
        public var denseMacs: Double
        public var ratio: Double { macs > 0 ? denseMacs / macs : 1 }
    }

    public static func summary(_ a: ModelArchitecture, schedule: IdleSchedule?) -> Summary {
        let c = Double(a.embedDim), h = Double(a.mlpHidden)
        let n = Double(a.tokenCount)
        let np = a.patchCount
        let patch = Double(np) * c * Double(a.inChannels * a.patchSize * a.patchSize)
        let head = c * Double(a.classes) * (a.distilled ? 2 : 1)
        // Dense block: qkv 3NC^2 + proj NC^2 + MLP 2NCH + attention 2N^2C (IDLEVIT.md: (4 + 2*4) N C^2 + 2 N^2 C).
        let scales = a.layerScale ? 2.0 : 0
        func dense() -> Double { 4 * n * c * c + 2 * n * c * h + 2 * n * n * c + scales * n * c }
        // Idle block: q_cls C^2 + k for all N tokens NC^2 + score NC + (q, v, proj) 3SC^2 + MLP 2SCH + 2S^2C.
        func idle(_ k: Int) -> Double {
            let s = Double(k + a.prefixTokens)
            return c * c + n * c * c + n * c + 3 * s * c * c + 2 * s * c * h + 2 * s * s * c + scales * s * c
        }
        var layers = [Layer(name: ActivationName.patchEmbed.name, keptTokens: np, macs: patch, idle: false)]
        var denseTotal = patch + head
        var total = patch + head
        for i in 0..<a.depth {
            let d = dense()
            denseTotal += d
            if let k = schedule?.idleKept(layer: i) {
                let cost = idle(k)
                layers.append(Layer(name: ActivationName.block(i).name, keptTokens: k, macs: cost, idle: true))
                total += cost
            } else {
                layers.append(Layer(name: ActivationName.block(i).name, keptTokens: np, macs: d, idle: false))
                total += d
            }
        }
        let headName = a.distilled ? ActivationName.head.name + "+" + ActivationName.headDist.name : ActivationName.head.name
        layers.append(Layer(name: headName, keptTokens: a.prefixTokens, macs: head, idle: false))
        return Summary(layers: layers, macs: total, denseMacs: denseTotal)
    }
}
