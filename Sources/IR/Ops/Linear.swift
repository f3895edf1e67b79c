/// `linear(x[...,K], weight[O,K], bias[O]?) {rows?}` -> `[..., O]`: `x Wᵀ + b`. With `rows`
/// only output rows `[start, end)` of the weight (and bias) are used, which is how q, k or v
/// is taken out of a fused qkv without copying it.
public struct Linear: Hashable, Sendable {
    public let rows: Range<Int>?

    public init(rows: Range<Int>? = nil) throws(GraphError) {
        if let rows, rows.lowerBound < 0 || rows.isEmpty {
            throw .invalidNode(op: OpKind.linear.rawValue, message: "rows \(rows) is not a non-empty range of weight rows")
        }
        self.rows = rows
    }

    /// A linear over every output row.
    public static let full = try! Linear()

    func outputType(_ c: OpCheck) throws(GraphError) -> ValueType {
        try c.arity(2...3)
        try c.requireFloat()
        let (x, weight) = (c.inputs[0], c.inputs[1])
        guard x.rank >= 1, weight.rank == 2 else { throw c.fail("expects x[...,K], weight[O,K], bias[O]") }
        let (outFeatures, inFeatures) = (try c.fixed(weight, 0, "weight"), try c.fixed(weight, 1, "weight"))
        guard try c.fixed(x, x.rank - 1, "x") == inFeatures else { throw c.fail("x \(x) does not have \(inFeatures) features for weight \(weight)") }
        if c.inputs.count == 3, !c.isVector(c.inputs[2], outFeatures) { throw c.fail("bias \(c.inputs[2]) does not match weight \(weight)") }
        var produced = outFeatures
        if let rows {
            guard rows.upperBound <= outFeatures else { throw c.fail("rows \(rows) is not inside 0..<\(outFeatures)") }
            produced = rows.count
        }
        return ValueType(.f32, Array(x.shape.dropLast()) + [.fixed(produced)])
    }
}
