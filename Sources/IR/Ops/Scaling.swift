/// `divide(x) {divisor}` -> x's type: every element divided by a constant, as PyTorch computes
/// `x / skip_lam` (LV-ViT's residual branches) and `0.5 * m` (its auxiliary head, as `m / 2`:
/// both are the correctly rounded half of m, so they agree bit for bit). A divisor, not a
/// factor, because `x / 3` and `x * (1 / 3)` differ in the last bit (LV-ViT-L's skip_lam is 3).
public struct Divide: Hashable, Sendable {
    public let divisor: Double

    public init(divisor: Double) throws(GraphError) {
        guard divisor.isFinite, abs(divisor) >= 1e-6, abs(divisor) <= 1e6 else {
            throw .invalidNode(op: OpKind.divide.rawValue, message: "divisor \(divisor) is not a finite number with magnitude in [1e-6, 1e6]")
        }
        self.divisor = divisor
    }

    func outputType(_ c: OpCheck) throws(GraphError) -> ValueType {
        try Elementwise.unaryType(c)
    }
}

/// `max_tokens(x[B,N,C]) {start}` -> `[B, C]`: per image and channel, the maximum over tokens
/// `start..<N` (LV-ViT's token-labelling head takes the max of `aux_head` over the patch
/// tokens, start 1). NaN propagates, as in torch's `max`.
public struct MaxTokens: Hashable, Sendable {
    public let start: Int

    public init(start: Int) throws(GraphError) {
        guard start >= 0, start < Limits.tokens.maximum else {
            throw .invalidNode(op: OpKind.maxTokens.rawValue, message: "start \(start) is outside 0..<\(Limits.tokens.maximum)")
        }
        self.start = start
    }

    func outputType(_ c: OpCheck) throws(GraphError) -> ValueType {
        try c.arity(1...1)
        try c.requireFloat()
        let x = c.inputs[0]
        guard x.rank == 3, start < (try c.fixed(x, 1, "x")) else { throw c.fail("cannot take the max over tokens \(start)... of \(x)") }
        return ValueType(.f32, [x.shape[0], x.shape[2]])
    }
}
