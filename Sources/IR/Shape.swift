/// One dimension of a value: the symbolic batch, or a fixed extent.
public enum Dim: Hashable, Sendable, CustomStringConvertible {
    case batch
    case fixed(Int)

    public var description: String {
        switch self {
        case .batch: return "B"
        case .fixed(let n): return String(n)
        }
    }

    /// The extent once the batch size is known.
    public func resolved(batch: Int) -> Int {
        switch self {
        case .batch: return batch
        case .fixed(let n): return n
        }
    }
}

/// The type of an IR value: element type and shape, with a symbolic batch.
public struct ValueType: Hashable, Sendable, CustomStringConvertible {
    public var elementType: ElementType
    public var shape: [Dim]

    public init(_ elementType: ElementType, _ shape: [Dim]) {
        self.elementType = elementType
        self.shape = shape
    }

    /// A float value of shape `[B, dims...]`.
    public static func batched(_ dims: Int...) -> ValueType {
        ValueType(.f32, [.batch] + dims.map(Dim.fixed))
    }

    public var description: String {
        "\(elementType)[\(shape.map(\.description).joined(separator: ", "))]"
    }

    public var rank: Int { shape.count }

    /// The last dimension, when it is fixed.
    public var lastExtent: Int? {
        if case .fixed(let n)? = shape.last { return n }
        return nil
    }

    public func extent(_ axis: Int) -> Int? {
        guard axis >= 0, axis < shape.count, case .fixed(let n) = shape[axis] else { return nil }
        return n
    }

    public func concreteShape(batch: Int) -> [Int] { shape.map { $0.resolved(batch: batch) } }

    public func elementCount(batch: Int) -> Int {
        shape.reduce(1) { $0 * $1.resolved(batch: batch) }
    }
}

extension Array where Element == Int {
    /// Product of the extents; 1 for a scalar. A zero extent anywhere makes it 0 before any
    /// other is multiplied, so [2^40, 2^40, 0] is 0, not a trap. (Shapes from files go through
    /// `Checked.elementCount` first; this is for shapes already known to fit.)
    public var elementCount: Int { contains(0) ? 0 : reduce(1, *) }
}

/// Shapes print as `[2, 197, 64]`.
public func describeShape(_ shape: [Int]) -> String {
    "[" + shape.map(String.init).joined(separator: ", ") + "]"
}
