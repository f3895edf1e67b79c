/// Token bookkeeping: prepend class (and distillation) tokens, take one token, and the
/// per-image gather and scatter of selected rows that idle blocks are made of.
enum TokenKernels {
    /// `y[b] = [prefix tokens..., patches[b]...]`.
    static func concat(prefix: [UnsafePointer<Float>], patches: UnsafePointer<Float>, batch: Int, patchCount: Int, channels: Int,
                       y: UnsafeMutablePointer<Float>) {
        let tokens = prefix.count + patchCount
        for b in 0..<batch {
            let out = y + b * tokens * channels
            for (t, token) in prefix.enumerated() { (out + t * channels).update(from: token, count: channels) }
            (out + prefix.count * channels).update(from: patches + b * patchCount * channels, count: patchCount * channels)
        }
    }

    static func take(_ x: UnsafePointer<Float>, batch: Int, tokens: Int, channels: Int, index: Int, y: UnsafeMutablePointer<Float>) {
        for b in 0..<batch { (y + b * channels).update(from: x + (b * tokens + index) * channels, count: channels) }
    }

    /// `y[b, s] = x[b, index[b, s]]`; with `rows`, only for the first `rows` of the `selected`.
    static func gather(_ x: UnsafePointer<Float>, batch: Int, tokens: Int, channels: Int,
                       index: UnsafePointer<Int32>, selected: Int, rows: Int? = nil, y: UnsafeMutablePointer<Float>) {
        for b in 0..<batch {
            for s in 0..<(rows ?? selected) {
                let t = Int(index[b * selected + s])
                (y + (b * selected + s) * channels).update(from: x + (b * tokens + t) * channels, count: channels)
            }
        }
    }

    /// Copies `x` then overwrites the selected rows: idle rows come through bit for bit.
    static func scatter(_ x: UnsafePointer<Float>, batch: Int, tokens: Int, channels: Int,
                        index: UnsafePointer<Int32>, selected: Int, rows: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        if UnsafePointer(y) != x { y.update(from: x, count: batch * tokens * channels) }
        for b in 0..<batch {
            for s in 0..<selected {
                let t = Int(index[b * selected + s])
                (y + (b * tokens + t) * channels).update(from: rows + (b * selected + s) * channels, count: channels)
            }
        }
    }
}
