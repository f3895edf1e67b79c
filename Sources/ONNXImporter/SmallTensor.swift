/// A small constant (a shape, an index, a scale) as the folder computes with it. Values are
/// Doubles whatever the ONNX type: shape arithmetic stays exact below 2^53, and the int64
/// extremes exporters use as "to the end" markers only need to clamp, which `intValue` does.
struct SmallTensor: Equatable {
    /// Folding refuses to create anything larger: shape subgraphs are tiny, and a hostile
    /// `ConstantOfShape` must not allocate gigabytes.
    static let maximumCount = 1 << 16

    var shape: [Int]
    var values: [Double]
    var isInteger: Bool

    init(shape: [Int], values: [Double], isInteger: Bool) {
        self.shape = shape
        self.values = values
        self.isInteger = isInteger
    }

    init(ints: [Int]) {
        self.init(shape: [ints.count], values: ints.map(Double.init), isInteger: true)
    }

    var count: Int { values.count }
    var ints: [Int] { values.map(SmallTensor.intValue) }
    var scalar: Double? { values.count == 1 ? values[0] : nil }

    /// A Double as an Int, clamped instead of trapping (int64 max/min, NaN from hostile files).
    static func intValue(_ value: Double) -> Int {
        if value.isNaN { return 0 }
        if value >= 9.2e18 { return Int.max }
        if value <= -9.2e18 { return Int.min }
        return Int(value.rounded(.towardZero))
    }

    /// Elementwise with numpy broadcasting; nil when the shapes do not broadcast.
    static func broadcast(_ a: SmallTensor, _ b: SmallTensor, integer: Bool,
                          _ op: (Double, Double) -> Double) -> SmallTensor? {
        guard let shape = broadcastShape(a.shape, b.shape), let count = checkedCount(shape), count <= maximumCount else { return nil }
        var values = [Double](repeating: 0, count: count)
        for i in 0..<count {
            values[i] = op(a.values[sourceIndex(i, shape, a.shape)], b.values[sourceIndex(i, shape, b.shape)])
        }
        return SmallTensor(shape: shape, values: values, isInteger: integer)
    }

    /// Three-way broadcasting for `Where`.
    static func select(_ condition: SmallTensor, _ a: SmallTensor, _ b: SmallTensor) -> SmallTensor? {
        guard let ab = broadcastShape(a.shape, b.shape), let shape = broadcastShape(condition.shape, ab),
              let count = checkedCount(shape), count <= maximumCount else { return nil }
        let values = (0..<count).map { i in
            condition.values[sourceIndex(i, shape, condition.shape)] != 0
                ? a.values[sourceIndex(i, shape, a.shape)] : b.values[sourceIndex(i, shape, b.shape)]
        }
        return SmallTensor(shape: shape, values: values, isInteger: a.isInteger && b.isInteger)
    }

    /// Index into a tensor of `from` shape for flat index `i` of the broadcast `to` shape.
    static func sourceIndex(_ i: Int, _ to: [Int], _ from: [Int]) -> Int {
        var remaining = i
        var index = 0
        var step = 1
        let offset = to.count - from.count
        for axis in stride(from: to.count - 1, through: 0, by: -1) {
            let coordinate = remaining % max(to[axis], 1)
            remaining /= max(to[axis], 1)
            let fromAxis = axis - offset
            if fromAxis >= 0 {
                let dim = from[fromAxis]
                if dim != 1 { index += coordinate * step }
                step *= dim
            }
        }
        return index
    }

    /// Gathers along `axis` (indices already normalised and in range).
    func gather(axis: Int, indices: [Int], indexShape: [Int]) -> SmallTensor {
        let outer = shape[..<axis].reduce(1, *)
        let inner = shape[(axis + 1)...].reduce(1, *)
        let dim = shape[axis]
        var out: [Double] = []
        out.reserveCapacity(outer * indices.count * inner)
        for o in 0..<outer {
            for index in indices {
                let base = (o * dim + index) * inner
                out.append(contentsOf: values[base..<base + inner])
            }
        }
        return SmallTensor(shape: Array(shape[..<axis]) + indexShape + Array(shape[(axis + 1)...]), values: out, isInteger: isInteger)
    }

    /// Keeps, on each axis, the listed positions (in order).
    func select(positions: [[Int]]) -> SmallTensor {
        let newShape = positions.map(\.count)
        let count = newShape.elementCount
        var out = [Double](repeating: 0, count: count)
        var strides = [Int](repeating: 1, count: shape.count)
        for axis in stride(from: shape.count - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * shape[axis + 1] }
        for i in 0..<count {
            var remaining = i
            var source = 0
            for axis in stride(from: newShape.count - 1, through: 0, by: -1) {
                let coordinate = remaining % newShape[axis]
                remaining /= newShape[axis]
                source += positions[axis][coordinate] * strides[axis]
            }
            out[i] = values[source]
        }
        return SmallTensor(shape: newShape, values: out, isInteger: isInteger)
    }
}

/// numpy broadcasting of two shapes.
func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let rank = max(a.count, b.count)
    var result: [Int] = []
    for i in 0..<rank {
        let x = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let y = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        if x == y || y == 1 { result.append(x) } else if x == 1 { result.append(y) } else { return nil }
    }
    return result
}

/// ONNX Slice on one axis: the positions kept, after the spec's clamping rules.
func slicePositions(dim: Int, start: Int, end: Int, step: Int) -> [Int]? {
    guard step != 0, step != Int.min else { return nil }
    func normalise(_ value: Int) -> Int { value < 0 ? max(value, Int.min / 2) + dim : value }
    var first = normalise(start)
    var last = normalise(end)
    if step > 0 {
        first = min(max(first, 0), dim)
        last = min(max(last, 0), dim)
        guard first < last else { return [] }
        return Array(stride(from: first, to: last, by: step))
    }
    first = min(max(first, -1), dim - 1)
    last = min(max(last, -1), dim - 1)
    guard first > last else { return [] }
    return Array(stride(from: first, to: last, by: step))
}

/// How many positions ONNX Slice keeps on one axis, without listing them (activation
/// dimensions can be large).
func sliceCount(dim: Int, start: Int, end: Int, step: Int) -> Int? {
    guard step != 0, step != Int.min else { return nil }
    func normalise(_ value: Int) -> Int { value < 0 ? max(value, Int.min / 2) + dim : value }
    if step > 0 {
        let first = min(max(normalise(start), 0), dim), last = min(max(normalise(end), 0), dim)
        return first < last ? (last - first - 1) / step + 1 : 0
    }
    let first = min(max(normalise(start), -1), dim - 1), last = min(max(normalise(end), -1), dim - 1)
    return first > last ? (first - last - 1) / (-step) + 1 : 0
}

/// Normalises a possibly negative axis; nil when out of range.
func normaliseAxis(_ axis: Int, rank: Int) -> Int? {
    let value = axis < 0 ? axis + rank : axis
    return value >= 0 && value < rank ? value : nil
}
