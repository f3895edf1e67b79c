/// Arithmetic on numbers that come from files, metadata or flags.
///
/// Swift traps on `+`, `*` and `Int(someDouble)` when the result does not fit, which turns a
/// hostile file into a crash (signal 4). Every integer derived from outside the process goes
/// through these helpers (or a `Limit` check) before it sizes an allocation, a loop or an
/// index; they report the problem as a `LimitError` naming what was being computed.
///
/// `what` is a short phrase for the message ("the element count of tensor 'x'"): it is only
/// built when something fails, and text taken from a file inside it must already be escaped
/// with `escapedForMessage`.
public enum Checked {
    /// `a * b`, or `.overflow` naming `what`.
    public static func multiply(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws(LimitError) -> Int {
        let (result, overflow) = a.multipliedReportingOverflow(by: b)
        guard !overflow else { throw .overflow(what()) }
        return result
    }

    /// `a + b`, or `.overflow` naming `what`.
    public static func add(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws(LimitError) -> Int {
        let (result, overflow) = a.addingReportingOverflow(b)
        guard !overflow else { throw .overflow(what()) }
        return result
    }

    /// `a - b`, or `.overflow` naming `what`.
    public static func subtract(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws(LimitError) -> Int {
        let (result, overflow) = a.subtractingReportingOverflow(b)
        guard !overflow else { throw .overflow(what()) }
        return result
    }

    /// The element count of a shape: the product of its extents (1 for a scalar). A negative
    /// extent is `.negative`, a product that does not fit is `.overflow`. A zero extent makes
    /// the product 0 whatever the others are, but they are still checked: [0, 2^62, 2^62]
    /// is refused, because code downstream multiplies the other extents on their own.
    public static func elementCount(_ shape: some Sequence<Int>, _ what: @autoclosure () -> String) throws(LimitError) -> Int {
        var product = 1
        var nonZeroProduct = 1
        for extent in shape {
            guard extent >= 0 else { throw .negative(what(), value: String(extent)) }
            if extent == 0 {
                product = 0
                continue
            }
            let (next, overflow) = nonZeroProduct.multipliedReportingOverflow(by: extent)
            guard !overflow else { throw .overflow(what()) }
            nonZeroProduct = next
            if product != 0 { product = next }
        }
        return product
    }

    /// The bytes of a tensor: its element count times the element size.
    public static func byteCount(_ shape: some Sequence<Int>, elementSize: Int, _ what: @autoclosure () -> String) throws(LimitError) -> Int {
        try multiply(try elementCount(shape, what()), elementSize, what())
    }

    /// The sum of values that must each be non-negative (split sizes, concatenated extents).
    public static func sum(_ values: some Sequence<Int>, _ what: @autoclosure () -> String) throws(LimitError) -> Int {
        var total = 0
        for value in values {
            guard value >= 0 else { throw .negative(what(), value: String(value)) }
            let (next, overflow) = total.addingReportingOverflow(value)
            guard !overflow else { throw .overflow(what()) }
            total = next
        }
        return total
    }

    /// An integer of another width or signedness (UInt64 offsets, Int64 dims) as Int.
    public static func int(_ value: some BinaryInteger, _ what: @autoclosure () -> String) throws(LimitError) -> Int {
        guard let result = Int(exactly: value) else { throw .overflow(what()) }
        return result
    }

    /// A Double that must be an exact integer ("depth": 12.0 is 12; 12.5, 1e300 and NaN are
    /// errors).
    public static func int(exactly value: Double, _ what: @autoclosure () -> String) throws(LimitError) -> Int {
        guard value.isFinite else { throw .notAnInteger(what(), value: String(value)) }
        guard value.rounded(.towardZero) == value else { throw .notAnInteger(what(), value: String(value)) }
        guard let result = Int(exactly: value) else { throw .overflow(what()) }
        return result
    }

    /// A Double rounded by `rule` to an Int (`floor(224 / crop_pct)`), or an error when it is
    /// not finite or the rounded value does not fit: `Int(1e300)` would trap.
    public static func int(rounding value: Double, _ rule: FloatingPointRoundingRule, _ what: @autoclosure () -> String) throws(LimitError) -> Int {
        guard value.isFinite else { throw .notAnInteger(what(), value: String(value)) }
        guard let result = Int(exactly: value.rounded(rule)) else { throw .overflow(what()) }
        return result
    }
}

/// A number from a file, metadata or a flag that does not fit: too large for a `Limit`,
/// negative, not an integer, or an overflowing sum or product. The first associated value
/// says what was being checked or computed.
public enum LimitError: Error, Sendable, Hashable, CustomStringConvertible {
    /// `what` overflows 64-bit integers when computed.
    case overflow(String)
    /// `what` is `value`, above `limit` (the `Limit` is named when there is one).
    case tooLarge(String, value: String, limit: Int)
    /// `what` is `value`, below `minimum`.
    case tooSmall(String, value: String, minimum: Int)
    /// `what` is `value`, negative where only counts or extents make sense.
    case negative(String, value: String)
    /// `what` is `value`, which has a fraction or is not finite where an integer is needed.
    case notAnInteger(String, value: String)

    public var description: String {
        switch self {
        case .overflow(let what):
            return "\(what) overflows 64-bit integer arithmetic"
        case .tooLarge(let what, let value, let limit):
            return "\(what) is \(value), over the limit of \(limit)"
        case .tooSmall(let what, let value, let minimum):
            return "\(what) is \(value), below the minimum of \(minimum)"
        case .negative(let what, let value):
            return "\(what) is \(value), which is negative"
        case .notAnInteger(let what, let value):
            return "\(what) is \(value), not an integer"
        }
    }
}
