/// The input types of one op being checked, with the small vocabulary every contract uses to
/// say what it expects.
struct OpCheck {
    let kind: OpKind
    let inputs: [ValueType]

    func fail(_ message: String) -> GraphError { .invalidNode(op: kind.rawValue, message: message) }

    func arity(_ allowed: ClosedRange<Int>) throws(GraphError) {
        guard allowed.contains(inputs.count) else {
            let expected = allowed.lowerBound == allowed.upperBound ? "\(allowed.lowerBound)" : "\(allowed.lowerBound)-\(allowed.upperBound)"
            throw fail("expects \(expected) inputs, has \(inputs.count)")
        }
    }

    /// The extent of `axis`, which must be fixed.
    func fixed(_ type: ValueType, _ axis: Int, _ what: String) throws(GraphError) -> Int {
        guard let n = type.extent(axis) else { throw fail("\(what) needs a fixed extent on axis \(axis), has \(type)") }
        return n
    }

    func requireFloat() throws(GraphError) {
        for t in inputs where t.elementType != .f32 { throw fail("expects f32 inputs, has \(t)") }
    }

    /// A `[n]` vector (bias, gamma, LayerNorm affine).
    func isVector(_ type: ValueType, _ n: Int) -> Bool { type.shape == [.fixed(n)] }
}
