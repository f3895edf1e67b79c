/// `attention(qkv[B,S,3C]) {heads}` or `attention(q[B,S,C], k[B,S,C], v[B,S,C]) {heads}` ->
/// `[B, S, C]`: multi-head scaled dot-product (scale `(C/heads)^-0.5`, softmax over keys),
/// heads concatenated. Channel c of q, k and v belongs to head `c / (C/heads)`.
public struct Attention: Hashable, Sendable {
    public let heads: Int

    public init(heads: Int) throws(GraphError) {
        guard Limits.heads.contains(heads) else {
            throw .invalidNode(op: OpKind.attention.rawValue, message: "heads \(heads) is outside \(Limits.heads)")
        }
        self.heads = heads
    }

    func outputType(_ c: OpCheck) throws(GraphError) -> ValueType {
        try c.requireFloat()
        if c.inputs.count == 1 {
            let qkv = c.inputs[0]
            guard qkv.rank == 3 else { throw c.fail("expects qkv[B,S,3C], has \(qkv)") }
            let packed = try c.fixed(qkv, 2, "qkv")
            guard packed % 3 == 0, (packed / 3) % heads == 0 else { throw c.fail("qkv width \(packed) does not split into 3 x \(heads) heads") }
            return ValueType(.f32, [qkv.shape[0], qkv.shape[1], .fixed(packed / 3)])
        }
        try c.arity(3...3)
        let q = c.inputs[0]
        guard q.rank == 3, q == c.inputs[1], q == c.inputs[2] else {
            throw c.fail("expects q, k, v of one shape [B,S,C], has \(c.inputs.map(\.description).joined(separator: ", "))")
        }
        guard try c.fixed(q, 2, "q") % heads == 0 else { throw c.fail("width \(q) does not split into \(heads) heads") }
        return q
    }
}
