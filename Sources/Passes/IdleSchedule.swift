import Foundation

/// How many image tokens each layer computes: nil = dense, K = an idle layer that computes the
/// prefix tokens plus the top K image tokens.
public struct IdleSchedule: Equatable, Sendable, CustomStringConvertible {
    public var kept: [Int?]
    /// Image patches at the input (Np); K is always a fraction of this.
    public var patchCount: Int
    /// The base keep ratio r when the schedule came from one.
    public var keepRatio: Double?

    public init(kept: [Int?], patchCount: Int, keepRatio: Double? = nil) {
        self.kept = kept
        self.patchCount = patchCount
        self.keepRatio = keepRatio
    }

    public var depth: Int { kept.count }
    public var idleLayers: [Int] { kept.indices.filter { kept[$0] != nil } }

    /// The paper's schedule (IDLEVIT.md §2): four stages of D/4 layers, stage 0 dense, stage s
    /// keeps r^s; K = floor(Np * r^s) from the initial patch count. With `idleLayers`, those
    /// layers are split into three consecutive stages as evenly as possible (stage j keeps
    /// r^j) and all others are dense; 3-11 on a depth-12 model is the default.
    public static func standard(depth: Int, patchCount: Int, keepRatio r: Double,
                                idleLayers: ClosedRange<Int>? = nil) throws(ScheduleError) -> IdleSchedule {
        guard r > 0, r <= 1, r.isFinite else { throw .keepRatioOutOfRange(r) }
        var kept = [Int?](repeating: nil, count: depth)
        if let layers = idleLayers {
            guard layers.lowerBound >= 0, layers.upperBound < depth else { throw .layersOutOfRange(layers, depth: depth) }
            let count = layers.count
            for (position, layer) in layers.enumerated() {
                let stage = 1 + (position * 3) / count
                kept[layer] = keptCount(patchCount: patchCount, ratio: pow(r, Double(stage)))
            }
        } else {
            guard depth % 4 == 0, depth >= 4 else { throw .depthNotDivisible(depth) }
            let stageLength = depth / 4
            for layer in stageLength..<depth {
                kept[layer] = keptCount(patchCount: patchCount, ratio: pow(r, Double(layer / stageLength)))
            }
        }
        return IdleSchedule(kept: kept, patchCount: patchCount, keepRatio: r)
    }

    /// An explicit list, one entry per layer.
    public static func explicit(_ kept: [Int?], depth: Int, patchCount: Int) throws(ScheduleError) -> IdleSchedule {
        guard kept.count == depth else { throw .wrongLength(kept.count, depth: depth) }
        for (layer, k) in kept.enumerated() {
            if let k, k < 0 || k > patchCount { throw .keptOutOfRange(layer: layer, kept: k, patchCount: patchCount) }
        }
        return IdleSchedule(kept: kept, patchCount: patchCount)
    }

    /// floor(Np * ratio) of the double product, exactly as the paper's code truncates it
    /// (196 * 0.7^2 = 96.04 -> 96).
    public static func keptCount(patchCount: Int, ratio: Double) -> Int {
        Int((Double(patchCount) * ratio).rounded(.down))
    }

    /// The tokens layer `layer` computes as an idle-aware block; nil where it runs the dense
    /// block (a dense entry, a K that keeps every patch, or no such layer).
    public func idleKept(layer: Int) -> Int? {
        guard kept.indices.contains(layer), let k = kept[layer], k != patchCount else { return nil }
        return k
    }

    /// The layers whose K keeps every patch compute exactly the dense block.
    public var effective: IdleSchedule {
        IdleSchedule(kept: kept.map { $0 == patchCount ? nil : $0 }, patchCount: patchCount, keepRatio: keepRatio)
    }

    public var description: String {
        kept.enumerated().map { "\($0.offset):\($0.element.map(String.init) ?? "dense")" }.joined(separator: " ")
    }
}

public enum ScheduleError: Error, CustomStringConvertible, Equatable {
    case keepRatioOutOfRange(Double)
    case layersOutOfRange(ClosedRange<Int>, depth: Int)
    case depthNotDivisible(Int)
    case wrongLength(Int, depth: Int)
    case keptOutOfRange(layer: Int, kept: Int, patchCount: Int)
    case notAModelGraph(String)

    public var description: String {
        switch self {
        case .keepRatioOutOfRange(let r): return "keep ratio \(r) is outside (0, 1]"
        case .layersOutOfRange(let layers, let depth):
            return "idle layers \(layers.lowerBound)-\(layers.upperBound) are outside the model's layers 0-\(depth - 1)"
        case .depthNotDivisible(let depth):
            return "the default schedule splits depth into 4 stages, and \(depth) is not divisible by 4: pass --idle-layers A-B or --kept-tokens"
        case .wrongLength(let count, let depth): return "the kept-token list has \(count) entries for \(depth) layers"
        case .keptOutOfRange(let layer, let kept, let patchCount): return "layer \(layer) keeps \(kept) tokens, outside 0...\(patchCount)"
        case .notAModelGraph(let message): return "cannot apply the IdleViT rewrite: \(message)"
        }
    }
}
