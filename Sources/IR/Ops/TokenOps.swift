/// `token_select(x[B,N,C], qkvWeight[3C,C], qkvBias[3C]?) {heads, keep, prefix}` ->
/// `i32[B, prefix + keep]`: the idle block's choice of rows (IDLEVIT.md §3). `x` is the
/// block's LN1 output; the prefix tokens (class, distillation) come first, then the `keep`
/// image tokens of highest `mean over heads of q_cls,h . k_j,h` (raw, unscaled) in descending
/// score, ties to the lower index.
public struct TokenSelect: Hashable, Sendable {
    public let heads: Int
    public let keep: Int
    public let prefix: Int

    public init(heads: Int, keep: Int, prefix: Int) throws(GraphError) {
        guard Limits.heads.contains(heads), keep >= 0, keep <= Limits.tokens.maximum, prefix >= 1, prefix <= 2 else {
            throw .invalidNode(op: OpKind.tokenSelect.rawValue,
                               message: "needs heads in \(Limits.heads), keep in 0...\(Limits.tokens.maximum), prefix 1 or 2 (has \(heads), \(keep), \(prefix))")
        }
        self.heads = heads
        self.keep = keep
        self.prefix = prefix
    }

    func outputType(_ c: OpCheck) throws(GraphError) -> ValueType {
        try c.arity(2...3)
        try c.requireFloat()
        let (x, weight) = (c.inputs[0], c.inputs[1])
        guard x.rank == 3 else { throw c.fail("expects x[B,N,C], has \(x)") }
        let (tokens, channels) = (try c.fixed(x, 1, "x"), try c.fixed(x, 2, "x"))
        guard weight.shape == [.fixed(3 * channels), .fixed(channels)] else {
            throw c.fail("expects the block's qkv weight [\(3 * channels), \(channels)], has \(weight)")
        }
        if c.inputs.count == 3, !c.isVector(c.inputs[2], 3 * channels) {
            throw c.fail("expects the block's qkv bias [\(3 * channels)], has \(c.inputs[2])")
        }
        guard channels % heads == 0 else { throw c.fail("width \(channels) does not split into \(heads) heads") }
        guard prefix + keep <= tokens else { throw c.fail("keeps \(keep) of \(tokens - prefix) image tokens") }
        return ValueType(.i32, [x.shape[0], .fixed(prefix + keep)])
    }
}

/// `take_token(x[B,N,C]) {index}` -> `[B, C]`: one token of every image.
public struct TakeToken: Hashable, Sendable {
    public let index: Int

    public init(index: Int) throws(GraphError) {
        guard index >= 0, index <= Limits.tokens.maximum else {
            throw .invalidNode(op: OpKind.takeToken.rawValue, message: "index \(index) is outside 0...\(Limits.tokens.maximum)")
        }
        self.index = index
    }

    func outputType(_ c: OpCheck) throws(GraphError) -> ValueType {
        try c.arity(1...1)
        try c.requireFloat()
        let x = c.inputs[0]
        guard x.rank == 3, index < (try c.fixed(x, 1, "x")) else { throw c.fail("cannot take token \(index) of \(x)") }
        return ValueType(.f32, [x.shape[0], x.shape[2]])
    }
}

/// The contracts of the attribute-free token ops.
enum TokenOps {
    /// `concat_tokens(cls[1,1,C], (dist[1,1,C],) patches[B,Np,C])` -> `[B, N, C]`.
    static func concatType(_ c: OpCheck) throws(GraphError) -> ValueType {
        try c.arity(2...3)
        try c.requireFloat()
        let patches = c.inputs[c.inputs.count - 1]
        guard patches.rank == 3 else { throw c.fail("expects patches[B,Np,C], has \(patches)") }
        let channels = try c.fixed(patches, 2, "patches")
        for token in c.inputs.dropLast() where token.shape != [.fixed(1), .fixed(1), .fixed(channels)] {
            throw c.fail("token \(token) is not [1, 1, \(channels)]")
        }
        let count = try c.fixed(patches, 1, "patches") + c.inputs.count - 1
        return ValueType(.f32, [patches.shape[0], .fixed(count), .fixed(channels)])
    }

    /// `gather_tokens(x[B,N,C], index i32[B,S])` -> `[B, S, C]`.
    static func gatherType(_ c: OpCheck) throws(GraphError) -> ValueType {
        try c.arity(2...2)
        let (x, index) = (c.inputs[0], c.inputs[1])
        guard x.elementType == .f32, x.rank == 3, index.elementType == .i32, index.rank == 2 else {
            throw c.fail("expects x[B,N,C] and i32 index[B,S], has \(x) and \(index)")
        }
        return ValueType(.f32, [x.shape[0], index.shape[1], x.shape[2]])
    }

    /// `scatter_tokens(x[B,N,C], index i32[B,S], rows[B,S,C])` -> `x`'s type.
    static func scatterType(_ c: OpCheck) throws(GraphError) -> ValueType {
        try c.arity(3...3)
        let (x, index, rows) = (c.inputs[0], c.inputs[1], c.inputs[2])
        guard x.elementType == .f32, x.rank == 3, index.elementType == .i32, index.rank == 2,
              rows == ValueType(.f32, [x.shape[0], index.shape[1], x.shape[2]]) else {
            throw c.fail("expects x[B,N,C], i32 index[B,S], rows[B,S,C], has \(x), \(index), \(rows)")
        }
        return x
    }
}
