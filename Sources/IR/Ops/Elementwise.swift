/// The contracts of the attribute-free elementwise ops.
enum Elementwise {
    /// `add(a, b)` -> `a`'s type; `b` is `a`'s shape or `[1, ...]` broadcast over the batch.
    static func addType(_ c: OpCheck) throws(GraphError) -> ValueType {
        try c.arity(2...2)
        try c.requireFloat()
        let (a, b) = (c.inputs[0], c.inputs[1])
        let broadcast = b.rank == a.rank && b.shape.first == .fixed(1) && Array(b.shape.dropFirst()) == Array(a.shape.dropFirst())
        guard a == b || broadcast else { throw c.fail("cannot add \(a) and \(b)") }
        return a
    }

    /// `scale(x[...,C], gamma[C])` -> `x`'s type: every channel multiplied by its gamma.
    static func scaleType(_ c: OpCheck) throws(GraphError) -> ValueType {
        try c.arity(2...2)
        try c.requireFloat()
        let (x, gamma) = (c.inputs[0], c.inputs[1])
        let channels = try c.fixed(x, x.rank - 1, "x")
        guard c.isVector(gamma, channels) else { throw c.fail("gamma \(gamma) does not match \(channels) channels of \(x)") }
        return x
    }

    /// `gelu(x)` -> `x`'s type.
    static func unaryType(_ c: OpCheck) throws(GraphError) -> ValueType {
        try c.arity(1...1)
        try c.requireFloat()
        return c.inputs[0]
    }

    /// `mean(a, b, ...)` of one shape -> that shape.
    static func meanType(_ c: OpCheck) throws(GraphError) -> ValueType {
        try c.requireFloat()
        guard let first = c.inputs.first, c.inputs.allSatisfy({ $0 == first }) else { throw c.fail("expects one or more inputs of one shape") }
        return first
    }
}

/// `layer_norm(x[...,C], weight[C], bias[C]) {eps}` over the last axis, biased variance.
public struct LayerNorm: Hashable, Sendable {
    public let eps: Double

    public init(eps: Double) throws(GraphError) {
        guard eps.isFinite, eps >= 0, eps < 1 else {
            throw .invalidNode(op: OpKind.layerNorm.rawValue, message: "eps \(eps) is outside [0, 1)")
        }
        self.eps = eps
    }

    func outputType(_ c: OpCheck) throws(GraphError) -> ValueType {
        try c.arity(3...3)
        try c.requireFloat()
        let x = c.inputs[0]
        let channels = try c.fixed(x, x.rank - 1, "x")
        guard c.isVector(c.inputs[1], channels), c.isVector(c.inputs[2], channels) else {
            throw c.fail("weight \(c.inputs[1]) / bias \(c.inputs[2]) do not match \(channels) channels")
        }
        return x
    }
}
