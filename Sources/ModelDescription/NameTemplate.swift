import IR

/// A tensor or activation name with at most one block index: `blocks.{i}.attn.qkv.weight`.
/// Matching parses the index as a bounded decimal (`Limits.depth`), so a name like
/// `blocks.9223372036854775807.norm1.weight` is a clear error, never an overflow or a
/// billion-entry list.
public struct NameTemplate: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let text: String
    private let head: Substring
    private let tail: Substring?

    public init(_ text: String) {
        self.text = text
        if let range = text.range(of: "{i}") {
            head = text[..<range.lowerBound]
            tail = text[range.upperBound...]
        } else {
            head = Substring(text)
            tail = nil
        }
    }

    public init(stringLiteral value: String) { self.init(value) }

    public var description: String { text }
    /// Whether the name has a block index.
    public var isPerBlock: Bool { tail != nil }

    /// The name for one block (ignored for a global name).
    public func name(block: Int = 0) -> String {
        guard let tail else { return text }
        return String(head) + String(block) + String(tail)
    }

    public enum Match: Equatable {
        case global
        case block(Int)
        /// The name has this template's shape, but its index is not a block index idlevit
        /// takes (leading zeros, beyond `Limits.depth`).
        case badIndex(String)
    }

    /// How `name` fits this template, or nil when it does not.
    public func match(_ name: String) -> Match? {
        guard let tail else { return name == text ? .global : nil }
        guard name.hasPrefix(head), name.hasSuffix(tail), name.utf8.count > head.utf8.count + tail.utf8.count else { return nil }
        let digits = name.utf8.dropFirst(head.utf8.count).dropLast(tail.utf8.count)
        guard digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
        let text = String(decoding: digits, as: UTF8.self)
        // At most 4 digits before converting: the index cannot overflow, and 1e6 blocks are
        // refused here rather than allocated for.
        guard digits.count <= 4, let index = Int(text), String(index) == text, index < Limits.depth.maximum else {
            return .badIndex(text)
        }
        return .block(index)
    }
}
