import IR
import ModelDescription
import Passes

/// Multiply-accumulates of a ViT-family model, dense or under an idle schedule (IDLEVIT.md
/// §4): matmuls, linears, the patch convolution, and LayerScale's per-channel multiplies (one
/// per token and channel of each branch, DeiT-III); norms, softmax and GELU are not counted.
/// LV-ViT adds its stem's three convolutions (BatchNorm and ReLU, like the norms, are not
/// counted), the divisions by skip_lam (one per token and channel of each branch, as
/// LayerScale's multiplies) and the auxiliary head on the Np patch tokens.
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
        var layers: [Layer] = []
        var stem = 0.0
        var side = a.imageSize, channels = a.inChannels
        if a.family == .lvvit {
            for (index, stage) in LVViTStem.stages.enumerated() {
                side = (side + 2 * stage.padding - stage.kernel) / stage.stride + 1
                let macs = Double(side * side) * Double(a.stemChannels) * Double(channels * stage.kernel * stage.kernel)
                layers.append(Layer(name: ActivationName.stem(index + 1, .conv).name, keptTokens: np, macs: macs, idle: false))
                stem += macs
                channels = a.stemChannels
            }
        }
        let kernel = a.family == .lvvit ? a.patchSize / 2 : a.patchSize
        let patch = stem + Double(np) * c * Double(channels * kernel * kernel)
        let head = c * Double(a.classes) * (a.distilled ? 2 : 1) + (a.auxHead ? Double(np) * c * Double(a.classes) : 0)
        // Dense block: qkv 3NC^2 + proj NC^2 + MLP 2NCH + attention 2N^2C (IDLEVIT.md: (4 + 2*4) N C^2 + 2 N^2 C).
        let scales = a.layerScale || a.skipLam != 1 ? 2.0 : 0
        func dense() -> Double { 4 * n * c * c + 2 * n * c * h + 2 * n * n * c + scales * n * c }
        // Idle block: q_cls C^2 + k for all N tokens NC^2 + score NC + (q, v, proj) 3SC^2 + MLP 2SCH + 2S^2C.
        func idle(_ k: Int) -> Double {
            let s = Double(k + a.prefixTokens)
            return c * c + n * c * c + n * c + 3 * s * c * c + 2 * s * c * h + 2 * s * s * c + scales * s * c
        }
        layers.append(Layer(name: ActivationName.patchEmbed.name, keptTokens: np, macs: patch - stem, idle: false))
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
        let second = a.distilled ? ActivationName.headDist.name : (a.auxHead ? ActivationName.auxHead.name : nil)
        let headName = ActivationName.head.name + (second.map { "+" + $0 } ?? "")
        layers.append(Layer(name: headName, keptTokens: a.prefixTokens, macs: head, idle: false))
        return Summary(layers: layers, macs: total, denseMacs: denseTotal)
    }
}
