import Foundation

/// Evaluates nodes whose inputs are all known constants: the shape arithmetic torch.onnx
/// exports around Reshape/Expand (Shape -> Gather -> Unsqueeze -> Concat, ConstantOfShape ->
/// Equal -> Where) and scale computations (Shape -> Slice -> Cast -> Sqrt -> Div). Large
/// weights are never folded: they must keep their identity for the matcher.
enum ConstantFolder {
    /// Float initializers above this many elements are weights, not foldable constants.
    static let largestFoldedWeight = 8

    /// nil: not a constant computation; failure: a constant computation that is invalid.
    static func fold(_ node: ONNXNode, inputs: [ValueFact?], analysis: GraphAnalysis) -> Result<[SmallTensor], NodeProblem>? {
        if node.opType == "Shape" {
            guard let input = inputs.first ?? nil else { return .failure(NodeProblem("needs an input")) }
            let rank = input.shape.count
            let start = clampAxis(node.int("start") ?? 0, rank)
            let end = clampAxis(node.int("end") ?? rank, rank)
            return .success([SmallTensor(ints: start < end ? Array(input.shape[start..<end]) : [])])
        }
        if node.opType == "Size", let input = inputs.first ?? nil {
            guard let count = checkedCount(input.shape) else { return .failure(NodeProblem("input shape overflows")) }
            return .success([SmallTensor(shape: [], values: [Double(count)], isInteger: true)])
        }
        guard foldable.contains(node.opType) else { return nil }
        var values: [SmallTensor?] = []
        for input in inputs {
            guard let input else { values.append(nil); continue }
            switch input.kind {
            case .constant(let small): values.append(small)
            case .weight(let tensor) where tensor.count <= largestFoldedWeight:
                values.append(SmallTensor(shape: tensor.shape, values: tensor.doubles, isInteger: tensor.dataType.isInteger))
            default: return nil
            }
        }
        do throws(NodeProblem) {
            let result = try evaluate(node, values, opset: analysis.opset)
            for value in result where value.count > SmallTensor.maximumCount || value.count != checkedCount(value.shape) {
                throw NodeProblem("folding it would create \(value.shape) elements")
            }
            return .success(result)
        } catch {
            return .failure(error)
        }
    }

    static let foldable: Set<String> = [
        "Constant", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "ConstantOfShape", "Expand", "Where",
        "Equal", "Less", "Greater", "Not", "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Min", "Max", "Neg", "Sqrt",
        "Reciprocal", "Abs", "Floor", "Ceil", "Reshape", "Range",
    ]

    private static func clampAxis(_ axis: Int, _ rank: Int) -> Int {
        let value = axis < 0 ? axis + rank : axis
        return min(max(value, 0), rank)
    }

    private static func evaluate(_ node: ONNXNode, _ v: [SmallTensor?], opset: Int) throws(NodeProblem) -> [SmallTensor] {
        func input(_ i: Int) throws(NodeProblem) -> SmallTensor {
            guard i < v.count, let value = v[i] else { throw NodeProblem("input \(i) is missing") }
            return value
        }
        func binary(integerResult: Bool? = nil, _ op: (Double, Double) -> Double) throws(NodeProblem) -> [SmallTensor] {
            let a = try input(0), b = try input(1)
            guard let result = SmallTensor.broadcast(a, b, integer: integerResult ?? (a.isInteger && b.isInteger), op) else {
                throw NodeProblem("shapes \(a.shape) and \(b.shape) do not broadcast")
            }
            return [result]
        }
        func unary(_ op: (Double) -> Double) throws(NodeProblem) -> [SmallTensor] {
            var a = try input(0)
            a.values = a.values.map(op)
            return [a]
        }
        switch node.opType {
        case "Constant":
            return [try constantValue(node)]
        case "Gather":
            let data = try input(0), indices = try input(1)
            guard let axis = normaliseAxis(node.int("axis") ?? 0, rank: data.shape.count) else { throw NodeProblem("axis out of range") }
            let dim = data.shape[axis]
            var normalised: [Int] = []
            for index in indices.ints {
                let value = index < 0 ? index + dim : index
                guard value >= 0, value < dim else { throw NodeProblem("index \(index) out of range for dimension \(dim)") }
                normalised.append(value)
            }
            return [data.gather(axis: axis, indices: normalised, indexShape: indices.shape)]
        case "Unsqueeze", "Squeeze":
            var data = try input(0)
            let axes = opset >= 13 ? (v.count > 1 && v[1] != nil ? try input(1).ints : nil) : node.ints("axes")
            guard let shape = node.opType == "Squeeze" ? squeezed(data.shape, axes) : unsqueezed(data.shape, axes) else {
                throw NodeProblem("axes \(axes ?? []) do not fit shape \(data.shape)")
            }
            data.shape = shape
            return [data]
        case "Concat":
            let parts = v.compactMap { $0 }
            guard let first = parts.first, let axis = normaliseAxis(node.int("axis") ?? 0, rank: first.shape.count) else {
                throw NodeProblem("axis out of range")
            }
            guard let shape = concatenatedShape(parts.map(\.shape), axis: axis) else { throw NodeProblem("parts do not concatenate") }
            let outer = first.shape[..<axis].reduce(1, *)
            var values: [Double] = []
            for o in 0..<outer {
                for part in parts {
                    let block = part.shape[axis...].reduce(1, *)
                    values.append(contentsOf: part.values[(o * block)..<((o + 1) * block)])
                }
            }
            return [SmallTensor(shape: shape, values: values, isInteger: parts.allSatisfy(\.isInteger))]
        case "Slice":
            let data = try input(0)
            let starts = try input(1).ints, ends = try input(2).ints
            let axes = v.count > 3 && v[3] != nil ? try input(3).ints : Array(0..<starts.count)
            let steps = v.count > 4 && v[4] != nil ? try input(4).ints : Array(repeating: 1, count: starts.count)
            guard starts.count == ends.count, axes.count == starts.count, steps.count == starts.count else {
                throw NodeProblem("starts, ends, axes and steps differ in length")
            }
            var positions = data.shape.map { Array(0..<$0) }
            for (i, rawAxis) in axes.enumerated() {
                guard let axis = normaliseAxis(rawAxis, rank: data.shape.count),
                      let kept = slicePositions(dim: data.shape[axis], start: starts[i], end: ends[i], step: steps[i]) else {
                    throw NodeProblem("axis \(rawAxis) or step out of range")
                }
                positions[axis] = kept
            }
            return [data.select(positions: positions)]
        case "Cast":
            var data = try input(0)
            let to = node.int("to") ?? 1
            if let type = ONNXDataType(rawValue: Int32(truncatingIfNeeded: to)), type.isInteger {
                data.values = data.values.map { type == .bool ? ($0 != 0 ? 1 : 0) : Double(SmallTensor.intValue($0)) }
                data.isInteger = true
            } else {
                data.values = data.values.map { Double(Float($0)) }
                data.isInteger = false
            }
            return [data]
        case "ConstantOfShape":
            let shape = try input(0).ints
            guard shape.allSatisfy({ $0 >= 0 && $0 <= SmallTensor.maximumCount }),
                  let count = checkedCount(shape), count <= SmallTensor.maximumCount else { throw NodeProblem("shape \(shape) is too large to fold") }
            var fill = SmallTensor(shape: [], values: [0], isInteger: false)
            if case .tensor(let tensor)? = node.attributes["value"], tensor.count == 1 {
                fill = SmallTensor(shape: [], values: tensor.doubles, isInteger: tensor.dataType.isInteger)
            }
            return [SmallTensor(shape: shape, values: Array(repeating: fill.values[0], count: count), isInteger: fill.isInteger)]
        case "Expand":
            let data = try input(0), shape = try input(1).ints
            guard shape.allSatisfy({ $0 >= 0 && $0 <= SmallTensor.maximumCount }), let target = broadcastShape(data.shape, shape),
                  let count = checkedCount(target), count <= SmallTensor.maximumCount else { throw NodeProblem("cannot expand \(data.shape) to \(shape)") }
            let zeros = SmallTensor(shape: target, values: Array(repeating: 0, count: count), isInteger: data.isInteger)
            guard let result = SmallTensor.broadcast(data, zeros, integer: data.isInteger, { a, _ in a }) else { throw NodeProblem("cannot expand") }
            return [result]
        case "Where":
            guard let result = SmallTensor.select(try input(0), try input(1), try input(2)) else { throw NodeProblem("shapes do not broadcast") }
            return [result]
        case "Equal": return try binary(integerResult: true) { $0 == $1 ? 1 : 0 }
        case "Less": return try binary(integerResult: true) { $0 < $1 ? 1 : 0 }
        case "Greater": return try binary(integerResult: true) { $0 > $1 ? 1 : 0 }
        case "Not": return try unary { $0 == 0 ? 1 : 0 }
        case "Add": return try binary { $0 + $1 }
        case "Sub": return try binary { $0 - $1 }
        case "Mul": return try binary { $0 * $1 }
        case "Div":
            let first = try input(0), second = try input(1)
            let integer = first.isInteger && second.isInteger
            return try binary { a, b in integer ? (b == 0 ? 0 : (a / b).rounded(.towardZero)) : a / b }
        case "Mod": return try binary { a, b in b == 0 ? 0 : a - (a / b).rounded(.down) * b }
        case "Pow":
            let base = try input(0)
            return try binary(integerResult: base.isInteger) { Foundation.pow($0, $1) }
        case "Min": return try binary { Swift.min($0, $1) }
        case "Max": return try binary { Swift.max($0, $1) }
        case "Neg": return try unary { -$0 }
        case "Abs": return try unary { Swift.abs($0) }
        case "Sqrt": return try unary { $0.squareRoot() }
        case "Reciprocal": return try unary { 1 / $0 }
        case "Floor": return try unary { $0.rounded(.down) }
        case "Ceil": return try unary { $0.rounded(.up) }
        case "Reshape":
            var data = try input(0)
            guard let shape = reshaped(data.shape, try input(1).ints, allowZero: node.int("allowzero") == 1) else {
                throw NodeProblem("cannot reshape \(data.shape)")
            }
            data.shape = shape
            return [data]
        case "Range":
            let start = try input(0), limit = try input(1), delta = try input(2)
            guard let a = start.scalar, let b = limit.scalar, let d = delta.scalar, d != 0 else { throw NodeProblem("needs scalar inputs") }
            let count = max(0, SmallTensor.intValue(((b - a) / d).rounded(.up)))
            guard count <= SmallTensor.maximumCount else { throw NodeProblem("range of \(count) values is too large to fold") }
            return [SmallTensor(shape: [count], values: (0..<count).map { a + Double($0) * d }, isInteger: start.isInteger)]
        default:
            throw NodeProblem("cannot be folded")
        }
    }

    private static func constantValue(_ node: ONNXNode) throws(NodeProblem) -> SmallTensor {
        switch node.attributes["value"] ?? node.attributes["value_float"] ?? node.attributes["value_floats"]
            ?? node.attributes["value_int"] ?? node.attributes["value_ints"] {
        case .tensor(let tensor)?:
            guard tensor.count <= SmallTensor.maximumCount else { throw NodeProblem("constant of \(tensor.count) integers is too large") }
            return SmallTensor(shape: tensor.shape, values: tensor.doubles, isInteger: tensor.dataType.isInteger)
        case .float(let value)?: return SmallTensor(shape: [], values: [Double(value)], isInteger: false)
        case .floats(let values)?: return SmallTensor(shape: [values.count], values: values.map(Double.init), isInteger: false)
        case .int(let value)?: return SmallTensor(shape: [], values: [Double(value)], isInteger: true)
        case .ints(let values)?: return SmallTensor(ints: values)
        default: throw NodeProblem("has no value attribute (value, value_float(s) or value_int(s))")
        }
    }
}

/// Shape of `Squeeze` with optional axes (all size-1 axes when absent).
func squeezed(_ shape: [Int], _ axes: [Int]?) -> [Int]? {
    guard let axes else { return shape.filter { $0 != 1 } }
    var remove = Set<Int>()
    for axis in axes {
        guard let a = normaliseAxis(axis, rank: shape.count), shape[a] == 1 else { return nil }
        remove.insert(a)
    }
    return shape.enumerated().filter { !remove.contains($0.offset) }.map(\.element)
}

func unsqueezed(_ shape: [Int], _ axes: [Int]?) -> [Int]? {
    guard let axes, !axes.isEmpty else { return nil }
    let rank = shape.count + axes.count
    var inserted = Set<Int>()
    for axis in axes {
        guard let a = normaliseAxis(axis, rank: rank), inserted.insert(a).inserted else { return nil }
    }
    var result: [Int] = []
    var source = shape.makeIterator()
    for i in 0..<rank { result.append(inserted.contains(i) ? 1 : (source.next() ?? 1)) }
    return result
}

func concatenatedShape(_ shapes: [[Int]], axis: Int) -> [Int]? {
    guard var result = shapes.first else { return nil }
    for shape in shapes.dropFirst() {
        guard shape.count == result.count else { return nil }
        for i in 0..<shape.count where i != axis && shape[i] != result[i] { return nil }
        let (sum, overflow) = result[axis].addingReportingOverflow(shape[axis])
        guard !overflow else { return nil }
        result[axis] = sum
    }
    return result
}

/// ONNX Reshape semantics: 0 copies the input dimension (unless allowzero), -1 is inferred.
func reshaped(_ shape: [Int], _ target: [Int], allowZero: Bool) -> [Int]? {
    guard let total = checkedCount(shape) else { return nil }
    var result: [Int] = []
    var inferred: Int?
    for (i, dim) in target.enumerated() {
        if dim == -1 {
            guard inferred == nil else { return nil }
            inferred = i
            result.append(1)
        } else if dim == 0 && !allowZero {
            guard i < shape.count else { return nil }
            result.append(shape[i])
        } else {
            guard dim >= 0 else { return nil }
            result.append(dim)
        }
    }
    guard let known = checkedCount(result) else { return nil }
    if let inferred {
        guard known > 0, total % known == 0 else { return nil }
        result[inferred] = total / known
    } else if known != total {
        return nil
    }
    return result
}

/// Element count without overflow; nil when a dimension is negative or the product overflows.
func checkedCount(_ shape: [Int]) -> Int? {
    var count = 1
    for dim in shape {
        guard dim >= 0 else { return nil }
        let (product, overflow) = count.multipliedReportingOverflow(by: dim)
        guard !overflow else { return nil }
        count = product
    }
    return count
}
