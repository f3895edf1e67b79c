/// Top-1 / top-5 counts of one model over the images seen so far.
public struct AccuracyTally: Sendable {
    public private(set) var images = 0
    public private(set) var top1 = 0
    public private(set) var top5 = 0
    /// Seconds spent running this model (interpreter time only).
    public var seconds = 0.0

    public init() {}

    public var top1Fraction: Double { images > 0 ? Double(top1) / Double(images) : 0 }
    public var top5Fraction: Double { images > 0 ? Double(top5) / Double(images) : 0 }
    /// Images per second of model time.
    public var imagesPerSecond: Double { seconds > 0 ? Double(images) / seconds : 0 }

    public mutating func add(rank: Int) {
        images += 1
        if rank < 1 { top1 += 1 }
        if rank < 5 { top5 += 1 }
    }
}

public enum Ranking {
    /// The rank of class `label` in a logits row: how many classes come before it, ordering by
    /// logit (highest first) with ties going to the lower class index, as `run`'s top-K does.
    /// A NaN logit for the label ranks last. Top-k is correct iff rank < k; a model with fewer
    /// than k classes therefore always counts as correct in its top-k.
    public static func rank(of label: Int, in row: UnsafeBufferPointer<Float>) -> Int {
        let value = row[label]
        if value.isNaN { return row.count }
        var before = 0
        for (j, x) in row.enumerated() where x > value || (x == value && j < label) { before += 1 }
        return before
    }

    /// The top-1 class: the highest logit, the lower index on ties; NaNs never win.
    public static func argmax(_ row: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        var bestValue = -Float.infinity
        var found = false
        for (j, x) in row.enumerated() where !x.isNaN && (!found || x > bestValue) {
            best = j
            bestValue = x
            found = true
        }
        return best
    }
}
