import IR

/// Why the graph is not the DeiT the matcher expects, at which node.
struct MatchFailure: Error {
    var node: ONNXNode?
    var message: String
}

/// A linear layer found in the graph, with its weight already in timm's [out, in] layout.
struct MatchedLinear {
    var output: String
    var weight: CanonicalWeight
    /// nil for a linear without bias (qkv of a ViT with `qkv_bias=False`).
    var bias: CanonicalWeight?
    var outFeatures: Int { weight.shape[0] }
    var inFeatures: Int { weight.shape[1] }
}

struct MatchedNorm {
    var output: String
    var weight: CanonicalWeight
    var bias: CanonicalWeight
    var eps: Double
}

/// A weight under its timm name, with the element type and initializer it came from.
struct CanonicalWeight {
    var tensor: FloatTensor
    var sourceType: ElementType
    /// The initializer (or Constant output) it was read from, for messages.
    var origin: String
    /// An ONNX MatMul weight, stored [in, out]: timm's [out, in] is its transpose. The copy is
    /// made once the graph is released (`ONNXImporter.load`), so the original can go at once.
    var needsTranspose = false

    /// The shape in timm's layout.
    var shape: [Int] { needsTranspose && tensor.shape.count == 2 ? [tensor.shape[1], tensor.shape[0]] : tensor.shape }

    /// The tensor in timm's layout.
    var canonicalTensor: FloatTensor { needsTranspose ? transposedMatrix(tensor) : tensor }
}

/// Building blocks of the DeiT matcher: walking the dataflow, reading constants and weights,
/// and recognising linears, layer norms (fused or decomposed), GELU and token selection.
extension DeiTMatcher {
    func fail(_ node: ONNXNode?, _ message: String) -> MatchFailure {
        MatchFailure(node: node, message: message + (context.isEmpty ? "" : " (in \(context))"))
    }

    /// The computing nodes that read `value`.
    func consumers(_ value: String) -> [ONNXNode] { analysis.computingConsumers(of: value) }

    /// The one node reading `value`, which must be one of `ops`.
    func onlyConsumer(_ value: String, _ ops: Set<String>, expecting what: String) throws(MatchFailure) -> ONNXNode {
        let readers = consumers(value)
        guard readers.count == 1, let node = readers.first else {
            let producer = analysis.producer(of: value)
            throw fail(producer, readers.isEmpty ? "its output '\(value)' is not used; expected \(what) next"
                : "its output '\(value)' is read by \(readers.count) nodes (\(readers.map(\.opType).joined(separator: ", "))); expected only \(what)")
        }
        guard ops.contains(node.opType) else { throw fail(node, "expected \(what)") }
        return node
    }

    func input(_ node: ONNXNode, _ i: Int) -> String {
        let inputs = analysis.inputs(of: node)
        return i < inputs.count ? inputs[i] : ""
    }

    func output(_ node: ONNXNode) -> String { node.outputs.first.map(analysis.resolve) ?? "" }

    /// For a binary node reading `value`, its other operand.
    func otherOperand(_ node: ONNXNode, than value: String) throws(MatchFailure) -> String {
        let inputs = analysis.inputs(of: node)
        guard inputs.count == 2 else { throw fail(node, "expected two inputs") }
        if inputs[0] == value { return inputs[1] }
        if inputs[1] == value { return inputs[0] }
        throw fail(node, "does not read '\(value)'")
    }

    func shape(_ value: String) -> [Int] { analysis.fact(value)?.shape ?? [] }

    /// A scalar constant operand, or nil.
    func scalarOperand(_ value: String) -> Double? {
        guard let small = analysis.constant(value), small.count == 1 else { return nil }
        return small.values[0]
    }

    /// A weight of the expected shape (broadcast-equivalent leading 1s allowed).
    func weight(_ value: String, shape expected: [Int], at node: ONNXNode, role: String) throws(MatchFailure) -> CanonicalWeight {
        guard let tensor = analysis.weight(value), let floats = tensor.floatTensor, let type = tensor.dataType.floatElementType else {
            throw fail(node, "\(role) '\(value)' is not a constant float tensor")
        }
        func leadingOnesDropped(_ shape: [Int]) -> [Int] { Array(shape.drop(while: { $0 == 1 })) }
        guard tensor.shape == expected || leadingOnesDropped(tensor.shape) == leadingOnesDropped(expected) else {
            throw fail(node, "\(role) '\(value)' has shape \(tensor.shape), expected \(expected)")
        }
        return CanonicalWeight(tensor: floats.reshaped(expected), sourceType: type, origin: tensor.name)
    }

    static func close(_ value: Double, _ expected: Double, tolerance: Double = 1e-5) -> Bool {
        abs(value - expected) <= tolerance * abs(expected)
    }

    /// `MatMul(x, W [in, out]) + b` (W transposed back to [out, in]), `MatMul(x, Transpose(W))
    /// + b`, or `Gemm(x, W, b)`; with `biasOptional`, also without the bias.
    mutating func matchLinear(_ node: ONNXNode, input x: String, role: String, biasOptional: Bool = false) throws(MatchFailure) -> MatchedLinear {
        let inFeatures = shape(x).last ?? 0
        if node.opType == "Gemm" {
            guard input(node, 0) == x, node.int("transA") ?? 0 == 0, (node.float("alpha") ?? 1) == 1, (node.float("beta") ?? 1) == 1 else {
                throw fail(node, "\(role): only Gemm(x, W, b) with alpha = beta = 1 and no transA is supported")
            }
            let transB = node.int("transB") ?? 0 == 1
            let w = input(node, 1)
            let raw = shape(w)
            guard raw.count == 2 else { throw fail(node, "\(role) weight '\(w)' is not a matrix") }
            let out = transB ? raw[0] : raw[1]
            var weight = try self.weight(w, shape: transB ? [out, inFeatures] : [inFeatures, out], at: node, role: "\(role) weight")
            weight.needsTranspose = !transB
            var bias: CanonicalWeight?
            if !input(node, 2).isEmpty {
                bias = try self.weight(input(node, 2), shape: [out], at: node, role: "\(role) bias")
            } else if !biasOptional {
                throw fail(node, "\(role) has no bias")
            }
            visit(node)
            return MatchedLinear(output: output(node), weight: weight, bias: bias)
        }
        guard node.opType == "MatMul", input(node, 0) == x else { throw fail(node, "expected the \(role) linear (MatMul or Gemm) reading '\(x)'") }
        let w = input(node, 1)
        var weight: CanonicalWeight
        if let transpose = analysis.producer(of: w), transpose.opType == "Transpose", !analysis.folded.contains(transpose.index),
           analysis.weight(input(transpose, 0)) != nil {
            guard transpose.ints("perm") ?? [1, 0] == [1, 0], let raw = analysis.fact(input(transpose, 0))?.shape, raw.count == 2 else {
                throw fail(transpose, "\(role) weight transpose must swap the two axes of a matrix")
            }
            weight = try self.weight(input(transpose, 0), shape: [raw[0], inFeatures], at: node, role: "\(role) weight")
            visit(transpose)
        } else {
            let raw = shape(w)
            guard raw.count == 2 else { throw fail(node, "\(role) weight '\(w)' is not a constant matrix") }
            weight = try self.weight(w, shape: [inFeatures, raw[1]], at: node, role: "\(role) weight")
            weight.needsTranspose = true
        }
        visit(node)
        if biasOptional, !hasBiasAdd(output(node), features: weight.shape[0]) {
            return MatchedLinear(output: output(node), weight: weight, bias: nil)
        }
        let add = try onlyConsumer(output(node), ["Add"], expecting: "the \(role) bias Add")
        let biasName = try otherOperand(add, than: output(node))
        let bias = try self.weight(biasName, shape: [weight.shape[0]], at: add, role: "\(role) bias")
        visit(add)
        return MatchedLinear(output: output(add), weight: weight, bias: bias)
    }

    /// Whether a MatMul's only consumer adds a constant [features] vector to it.
    private func hasBiasAdd(_ value: String, features: Int) -> Bool {
        let readers = consumers(value)
        guard readers.count == 1, let add = readers.first, add.opType == "Add", let other = try? otherOperand(add, than: value),
              let tensor = analysis.weight(other) else { return false }
        return tensor.shape.drop(while: { $0 == 1 }).elementsEqual([features])
    }

    /// `Mul(x, gamma)` by a constant [features] vector (LayerScale), if that is x's only consumer.
    mutating func matchScale(_ x: String, features: Int, role: String) throws(MatchFailure) -> (output: String, gamma: CanonicalWeight)? {
        let readers = consumers(x)
        guard readers.count == 1, let mul = readers.first, mul.opType == "Mul", let other = try? otherOperand(mul, than: x),
              let tensor = analysis.weight(other), tensor.shape.drop(while: { $0 == 1 }).elementsEqual([features]) else { return nil }
        let gamma = try weight(other, shape: [features], at: mul, role: role)
        visit(mul)
        return (output(mul), gamma)
    }

    /// LayerNormalization over the last axis, or torch's opset < 17 decomposition:
    /// ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul weight, Add bias.
    mutating func matchLayerNorm(_ x: String, dim: Int, role: String) throws(MatchFailure) -> MatchedNorm {
        let readers = consumers(x)
        if let ln = readers.first(where: { $0.opType == "LayerNormalization" && input($0, 0) == x }) {
            let rank = shape(x).count
            guard normaliseAxis(ln.int("axis") ?? -1, rank: rank) == rank - 1 else { throw fail(ln, "\(role) must normalise the last axis") }
            for extra in ln.outputs.dropFirst() where !extra.isEmpty && !consumers(extra).isEmpty {
                throw fail(ln, "\(role): mean / inverse deviation outputs are used")
            }
            guard !input(ln, 2).isEmpty else { throw fail(ln, "\(role) has no bias") }
            let weight = try self.weight(input(ln, 1), shape: [dim], at: ln, role: "\(role) weight")
            let bias = try self.weight(input(ln, 2), shape: [dim], at: ln, role: "\(role) bias")
            visit(ln)
            return MatchedNorm(output: output(ln), weight: weight, bias: bias, eps: Double(ln.float("epsilon") ?? 1e-5))
        }
        guard let mean = readers.first(where: { $0.opType == "ReduceMean" && input($0, 0) == x }) else {
            throw fail(analysis.producer(of: x), "expected \(role) (LayerNormalization, or ReduceMean/Sub/Pow/Sqrt/Div) reading its output '\(x)'")
        }
        try checkLastAxisMean(mean, role: role)
        let sub = try onlyConsumer(output(mean), ["Sub"], expecting: "\(role) Sub (x - mean)")
        guard input(sub, 0) == x, input(sub, 1) == output(mean) else { throw fail(sub, "\(role): expected x - mean") }
        let centred = output(sub)
        let centredReaders = consumers(centred)
        guard centredReaders.count == 2, let pow = centredReaders.first(where: { $0.opType == "Pow" }),
              let div = centredReaders.first(where: { $0.opType == "Div" }) else {
            throw fail(sub, "\(role): x - mean must feed Pow and Div")
        }
        guard input(pow, 0) == centred, scalarOperand(input(pow, 1)) == 2 else { throw fail(pow, "\(role): expected (x - mean)^2") }
        let variance = try onlyConsumer(output(pow), ["ReduceMean"], expecting: "\(role) variance ReduceMean")
        try checkLastAxisMean(variance, role: role)
        let addEps = try onlyConsumer(output(variance), ["Add"], expecting: "\(role) Add epsilon")
        guard let eps = scalarOperand(try otherOperand(addEps, than: output(variance))), eps >= 0, eps < 1 else {
            throw fail(addEps, "\(role): epsilon must be a small constant")
        }
        let sqrt = try onlyConsumer(output(addEps), ["Sqrt"], expecting: "\(role) Sqrt")
        guard input(div, 0) == centred, input(div, 1) == output(sqrt) else { throw fail(div, "\(role): expected (x - mean) / sqrt(var + eps)") }
        let mul = try onlyConsumer(output(div), ["Mul"], expecting: "\(role) scale Mul")
        let weight = try self.weight(try otherOperand(mul, than: output(div)), shape: [dim], at: mul, role: "\(role) weight")
        let add = try onlyConsumer(output(mul), ["Add"], expecting: "\(role) shift Add")
        let bias = try self.weight(try otherOperand(add, than: output(mul)), shape: [dim], at: add, role: "\(role) bias")
        for node in [mean, sub, pow, variance, addEps, sqrt, div, mul, add] { visit(node) }
        return MatchedNorm(output: output(add), weight: weight, bias: bias, eps: Double(Float(eps)))
    }

    private func checkLastAxisMean(_ node: ONNXNode, role: String) throws(MatchFailure) {
        let rank = shape(input(node, 0)).count
        let axes = analysis.opset >= 18 ? analysis.constant(input(node, 1))?.ints : node.ints("axes")
        guard let axes, axes.count == 1, normaliseAxis(axes[0], rank: rank) == rank - 1, node.int("keepdims") ?? 1 == 1 else {
            throw fail(node, "\(role): expected a mean over the last axis, keeping it")
        }
    }

    /// GELU, exact: a Gelu op, or 0.5 · x · (1 + erf(x / √2)) with the two factors applied in
    /// any order (torch's TorchScript exporter multiplies by x then 0.5, the dynamo exporter
    /// by 0.5 then x; x · 0.5 may also be formed first).
    mutating func matchGELU(_ x: String) throws(MatchFailure) -> String {
        let readers = consumers(x)
        if readers.count == 1, let gelu = readers.first, gelu.opType == "Gelu" {
            guard (gelu.string("approximate") ?? "none") == "none" else { throw fail(gelu, "only exact GELU (approximate = none) is supported") }
            visit(gelu)
            return output(gelu)
        }
        let sqrt2 = 2.0.squareRoot()
        guard readers.count == 2, let scaleNode = readers.first(where: { node in
            guard (node.opType == "Div" || node.opType == "Mul"), let erf = consumers(output(node)).first else { return false }
            return erf.opType == "Erf"
        }) else {
            throw fail(analysis.producer(of: x), "expected GELU (Gelu, or Div by √2, Erf, Add 1, Mul x, Mul 0.5) after it")
        }
        let factor = scalarOperand(try otherOperand(scaleNode, than: x))
        guard input(scaleNode, 0) == x, let factor,
              scaleNode.opType == "Div" ? Self.close(factor, sqrt2) : Self.close(factor, 1 / sqrt2) else {
            throw fail(scaleNode, "GELU: expected x / √2")
        }
        let erf = try onlyConsumer(output(scaleNode), ["Erf"], expecting: "GELU Erf")
        let plusOne = try onlyConsumer(output(erf), ["Add"], expecting: "GELU Add 1")
        guard scalarOperand(try otherOperand(plusOne, than: output(erf))) == 1 else { throw fail(plusOne, "GELU: expected erf(...) + 1") }
        for node in [scaleNode, erf, plusOne] { visit(node) }
        // Multiply (1 + erf) by x and by 0.5, in whichever order the exporter chose.
        var current = output(plusOne)
        var timesX = false, timesHalf = false
        while !(timesX && timesHalf) {
            let mul = try onlyConsumer(current, ["Mul"], expecting: "GELU product with x and 0.5")
            let other = try otherOperand(mul, than: current)
            if other == x, !timesX {
                timesX = true
            } else if scalarOperand(other) == 0.5, !timesHalf {
                timesHalf = true
            } else if !timesX, !timesHalf, let half = analysis.producer(of: other), half.opType == "Mul",
                      (try? otherOperand(half, than: x)).flatMap({ scalarOperand($0) }) == 0.5 {
                visit(half)
                timesX = true
                timesHalf = true
            } else {
                throw fail(mul, "GELU: expected a product of (1 + erf) with x and 0.5")
            }
            visit(mul)
            current = output(mul)
        }
        for reader in readers where !visited.contains(reader.index) {
            throw fail(reader, "reads the GELU input outside the GELU")
        }
        return current
    }
}

/// A copy of a matrix with its two axes swapped (ONNX MatMul weights are [in, out]).
func transposedMatrix(_ matrix: FloatTensor) -> FloatTensor {
    let rows = matrix.shape[0], columns = matrix.shape[1]
    let (storage, memory) = TensorStorage.allocate(byteCount: rows * columns * 4)
    let out = memory.bindMemory(to: Float.self, capacity: max(rows * columns, 1))
    let source = matrix.pointer
    // Tiles keep both the reads and the strided writes in cache (DeiT-B: 85 M elements).
    let tile = 32
    for rowStart in stride(from: 0, to: rows, by: tile) {
        for columnStart in stride(from: 0, to: columns, by: tile) {
            for r in rowStart..<min(rowStart + tile, rows) {
                for c in columnStart..<min(columnStart + tile, columns) { out[c * rows + r] = source[r * columns + c] }
            }
        }
    }
    return FloatTensor(shape: [columns, rows], storage: storage, pointer: UnsafePointer(out))
}
