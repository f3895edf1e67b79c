import Images

/// How a class is named in an image folder or a labels CSV: an ImageNet-1k WordNet id
/// (`n01440764`, class index = its position in the sorted list of the 1000 ids) or a decimal
/// class index.
public enum ClassLabel: Equatable, Sendable {
    case wordNet(String)
    case index(Int)

    /// Recognises `text` as a WordNet id (`n` and eight digits) or a class index (digits only);
    /// anything else is nil.
    public init?(_ text: some StringProtocol) {
        let bytes = Array(text.utf8)
        let isDigit = { (b: UInt8) in b >= 0x30 && b <= 0x39 }
        if bytes.count == 9, bytes[0] == 0x6E /* n */, bytes.dropFirst().allSatisfy(isDigit) {
            self = .wordNet(String(text))
        } else if !bytes.isEmpty, bytes.count <= 9, bytes.allSatisfy(isDigit), let value = Int(text) {
            // At most nine digits: no model has a billion classes, and Int(text) cannot overflow.
            self = .index(value)
        } else {
            return nil
        }
    }

    /// The class index in a model with `classes` outputs, or why there is none.
    public func classIndex(classes: Int) -> Result<Int, LabelProblem> {
        switch self {
        case .index(let value):
            return value < classes ? .success(value) : .failure(.outOfRange(value, classes: classes))
        case .wordNet(let id):
            guard classes == ImageNetSynsets.ids.count else { return .failure(.wordNetNeedsImageNet(classes: classes)) }
            guard let value = ClassLabel.wordNetIndex[id] else { return .failure(.unknownWordNetID(id)) }
            return .success(value)
        }
    }

    public var isWordNet: Bool {
        if case .wordNet = self { return true }
        return false
    }

    /// WordNet id -> ImageNet-1k class index.
    static let wordNetIndex: [String: Int] = Dictionary(uniqueKeysWithValues: ImageNetSynsets.ids.enumerated().map { ($1, $0) })
}

public enum LabelProblem: Error, Equatable, CustomStringConvertible {
    case outOfRange(Int, classes: Int)
    case wordNetNeedsImageNet(classes: Int)
    case unknownWordNetID(String)

    public var description: String {
        switch self {
        case .outOfRange(let value, let classes): return "class index \(value) is outside the model's \(classes) classes (0-\(classes - 1))"
        case .wordNetNeedsImageNet(let classes): return "WordNet ids name ImageNet-1k's 1000 classes, but the model has \(classes)"
        case .unknownWordNetID(let id): return "\(id) is not one of the 1000 ImageNet-1k WordNet ids"
        }
    }
}
