/// Output shapes of the ops that compute on tensors, so that the matcher can check the
/// shapes of what it recognises. Any op not listed here is unsupported: the importer reports
/// all of them at once rather than guess what they do.
enum ShapeInference {
    static let supported: Set<String> = [
        "Conv", "Reshape", "Flatten", "Transpose", "Concat", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Erf", "Gelu",
        "Softmax", "MatMul", "Gemm", "LayerNormalization", "ReduceMean", "Split", "Squeeze", "Unsqueeze", "Gather", "Slice",
        "Expand", "Cast",
        // LV-ViT: its stem (BatchNormalization unless the exporter folded it into the Conv)
        // and the max over tokens of its token-labelling head.
        "Relu", "BatchNormalization", "ReduceMax",
    ]

    static func outputShapes(_ node: ONNXNode, inputs: [ValueFact?], analysis: GraphAnalysis) -> Result<[[Int]], NodeProblem> {
        guard supported.contains(node.opType) else {
            return .failure(NodeProblem("op \(node.opType) is not supported" + position(node, analysis)))
        }
        for (key, attribute) in node.attributes {
            if case .unsupported(let kind) = attribute { return .failure(NodeProblem("attribute '\(key)' is a \(kind), not supported")) }
        }
        do throws(NodeProblem) {
            let shapes = try infer(node, inputs.map { $0?.shape }, analysis)
            for shape in shapes where checkedCount(shape) == nil { throw NodeProblem("output shape \(shape) is invalid") }
            return .success(shapes)
        } catch {
            return .failure(error)
        }
    }

    /// Where an unsupported node sits: the computing node it reads from.
    static func position(_ node: ONNXNode, _ analysis: GraphAnalysis) -> String {
        for input in node.inputs where !input.isEmpty {
            if input == analysis.inputName { return "; reads the graph input" }
            if let index = analysis.definedBy[input] {
                let producer = analysis.nodes[index]
                return "; reads the output of \(producer.label) (\(producer.opType))"
            }
        }
        return ""
    }

    private static func infer(_ node: ONNXNode, _ shapes: [[Int]?], _ analysis: GraphAnalysis) throws(NodeProblem) -> [[Int]] {
        func shape(_ i: Int) throws(NodeProblem) -> [Int] {
            guard i < shapes.count, let value = shapes[i] else { throw NodeProblem("input \(i) is missing") }
            return value
        }
        func constant(_ i: Int) -> SmallTensor? {
            i < node.inputs.count && !node.inputs[i].isEmpty ? analysis.constant(node.inputs[i]) : nil
        }
        func axis(_ value: Int, _ rank: Int) throws(NodeProblem) -> Int {
            guard let a = normaliseAxis(value, rank: rank) else { throw NodeProblem("axis \(value) out of range for rank \(rank)") }
            return a
        }
        switch node.opType {
        case "Add", "Sub", "Mul", "Div", "Pow":
            guard let result = broadcastShape(try shape(0), try shape(1)) else {
                throw NodeProblem("shapes \(try shape(0)) and \(try shape(1)) do not broadcast")
            }
            return [result]
        case "Sqrt", "Erf", "Gelu", "Softmax", "Cast", "Relu", "BatchNormalization":
            return [try shape(0)]
        case "LayerNormalization":
            let x = try shape(0)
            let a = try axis(node.int("axis") ?? -1, x.count)
            let reduced = Array(x[..<a]) + Array(repeating: 1, count: x.count - a)
            return [x, reduced, reduced].prefix(node.outputs.count).map { $0 }
        case "ReduceMean", "ReduceMax":
            let x = try shape(0)
            let axes = analysis.opset >= 18 ? constant(1)?.ints : node.ints("axes")
            let keep = (node.int("keepdims") ?? 1) != 0
            let reduced = try Set((axes ?? Array(0..<x.count)).map { a throws(NodeProblem) in try axis(a, x.count) })
            return [x.enumerated().compactMap { reduced.contains($0.offset) ? (keep ? 1 : nil) : $0.element }]
        case "MatMul":
            let a = try shape(0), b = try shape(1)
            guard a.count >= 2, b.count >= 2, a[a.count - 1] == b[b.count - 2],
                  let batch = broadcastShape(Array(a.dropLast(2)), Array(b.dropLast(2))) else {
                throw NodeProblem("cannot multiply \(a) by \(b)")
            }
            return [batch + [a[a.count - 2], b[b.count - 1]]]
        case "Gemm":
            let a = try shape(0), b = try shape(1)
            guard a.count == 2, b.count == 2 else { throw NodeProblem("Gemm needs 2-D inputs, got \(a) and \(b)") }
            let (m, k) = node.int("transA") == 1 ? (a[1], a[0]) : (a[0], a[1])
            let (k2, n) = node.int("transB") == 1 ? (b[1], b[0]) : (b[0], b[1])
            guard k == k2 else { throw NodeProblem("cannot multiply \(a) by \(b)") }
            return [[m, n]]
        case "Conv":
            let x = try shape(0), w = try shape(1)
            guard x.count == 4, w.count == 4, x[1] == w[1] * (node.int("group") ?? 1) else {
                throw NodeProblem("expects a 4-D input and weight with matching channels, got \(x) and \(w)")
            }
            let strides = node.ints("strides") ?? [1, 1], pads = node.ints("pads") ?? [0, 0, 0, 0]
            let dilations = node.ints("dilations") ?? [1, 1]
            let sane = { (value: Int) in value > 0 && value <= 1 << 16 }
            guard strides.count == 2, pads.count == 4, dilations.count == 2, strides.allSatisfy(sane),
                  dilations.allSatisfy(sane), pads.allSatisfy({ $0 >= 0 && $0 < 1 << 20 }), (node.int("group") ?? 1) >= 1 else {
                throw NodeProblem("unsupported strides, pads or dilations")
            }
            var out = [x[0], w[0]]
            for i in 0..<2 {
                let span = dilations[i] * (w[2 + i] - 1) + 1
                let size = x[2 + i] + pads[i] + pads[i + 2] - span
                guard size >= 0 else { throw NodeProblem("kernel larger than the input") }
                out.append(size / strides[i] + 1)
            }
            return [out]
        case "Reshape":
            let x = try shape(0)
            guard let target = constant(1)?.ints, let result = reshaped(x, target, allowZero: node.int("allowzero") == 1) else {
                throw NodeProblem("target shape is not a constant that fits \(x)")
            }
            return [result]
        case "Flatten":
            let x = try shape(0)
            let a = node.int("axis") ?? 1
            let split = a < 0 ? a + x.count : a
            guard split >= 0, split <= x.count, let head = checkedCount(Array(x[..<split])), let tail = checkedCount(Array(x[split...])) else {
                throw NodeProblem("axis out of range")
            }
            return [[head, tail]]
        case "Transpose":
            let x = try shape(0)
            let perm = node.ints("perm") ?? Array((0..<x.count).reversed())
            guard perm.count == x.count, Set(perm) == Set(0..<x.count) else { throw NodeProblem("perm \(perm) does not fit rank \(x.count)") }
            return [perm.map { x[$0] }]
        case "Concat":
            let parts = try (0..<node.inputs.count).map { i throws(NodeProblem) in try shape(i) }
            guard let first = parts.first, let result = concatenatedShape(parts, axis: try axis(node.int("axis") ?? 0, first.count)) else {
                throw NodeProblem("inputs do not concatenate")
            }
            return [result]
        case "Split":
            let x = try shape(0)
            let a = try axis(node.int("axis") ?? 0, x.count)
            var sizes = analysis.opset >= 13 ? constant(1)?.ints : node.ints("split")
            if sizes == nil {
                let parts = node.int("num_outputs") ?? node.outputs.count
                guard parts > 0, parts == node.outputs.count else { throw NodeProblem("num_outputs does not match the outputs") }
                let size = (x[a] + parts - 1) / parts
                sizes = (0..<parts).map { min(size, max(0, x[a] - $0 * size)) }
            }
            guard let sizes, sizes.count == node.outputs.count, sizes.allSatisfy({ $0 >= 0 && $0 <= x[a] }),
                  sizes.reduce(0, { $0 + $1 }) == x[a] else {
                throw NodeProblem("split sizes do not add up to dimension \(x[a])")
            }
            return sizes.map { var s = x; s[a] = $0; return s }
        case "Squeeze", "Unsqueeze":
            let x = try shape(0)
            let axes = analysis.opset >= 13 ? constant(1)?.ints : node.ints("axes")
            guard let result = node.opType == "Squeeze" ? squeezed(x, axes) : unsqueezed(x, axes) else {
                throw NodeProblem("axes do not fit shape \(x)")
            }
            return [result]
        case "Gather":
            let x = try shape(0)
            guard let indices = constant(1) else { throw NodeProblem("indices are not constant") }
            let a = try axis(node.int("axis") ?? 0, x.count)
            guard indices.ints.allSatisfy({ $0 >= -x[a] && $0 < x[a] }) else { throw NodeProblem("index out of range") }
            return [Array(x[..<a]) + indices.shape + Array(x[(a + 1)...])]
        case "Slice":
            var x = try shape(0)
            guard let starts = constant(1)?.ints, let ends = constant(2)?.ints else { throw NodeProblem("starts and ends are not constant") }
            let axes = constant(3)?.ints ?? Array(0..<starts.count)
            let steps = constant(4)?.ints ?? Array(repeating: 1, count: starts.count)
            guard starts.count == ends.count, axes.count == starts.count, steps.count == starts.count else {
                throw NodeProblem("starts, ends, axes and steps differ in length")
            }
            for i in 0..<starts.count {
                let a = try axis(axes[i], x.count)
                guard let kept = sliceCount(dim: x[a], start: starts[i], end: ends[i], step: steps[i]) else { throw NodeProblem("step 0") }
                x[a] = kept
            }
            return [x]
        case "Expand":
            let x = try shape(0)
            guard let target = constant(1)?.ints, target.allSatisfy({ $0 >= 0 }), let result = broadcastShape(x, target) else {
                throw NodeProblem("target shape is not a constant that \(x) broadcasts to")
            }
            return [result]
        default:
            throw NodeProblem("op \(node.opType) is not supported")
        }
    }
}
