/// Something found by name.
public protocol Named {
    var name: String { get }
}

/// Elements in the order they were added, found by name in O(1). Adding an element whose name
/// is already present replaces it in place, so order stays that of first appearance. Graph
/// constants and importers' weight sets are both this.
public struct NamedList<Element: Named>: RandomAccessCollection {
    private var elements: [Element] = []
    private var positions: [String: Int] = [:]

    public init() {}

    public init<S: Sequence>(_ elements: S) where S.Element == Element {
        for element in elements { append(element) }
    }

    public mutating func append(_ element: Element) {
        if let position = positions[element.name] {
            elements[position] = element
        } else {
            positions[element.name] = elements.count
            elements.append(element)
        }
    }

    public subscript(named name: String) -> Element? { positions[name].map { elements[$0] } }

    public var names: [String] { elements.map(\.name) }

    public var startIndex: Int { elements.startIndex }
    public var endIndex: Int { elements.endIndex }
    public subscript(position: Int) -> Element { elements[position] }
}

extension NamedList: Sendable where Element: Sendable {}
