/// Why a model file could not be imported. Every case names the file and, where there is
/// one, the tensor or node, so the one-line message says exactly what is wrong and where.
public enum ImportError: Error, CustomStringConvertible, Equatable {
    /// The file cannot be opened, mapped or read.
    case unreadable(file: String, reason: String)
    /// Content matches no supported format.
    case unrecognizedFormat(file: String, reason: String)
    /// The container (header, protobuf, superblock) breaks a rule of its format.
    case invalidFile(file: String, format: String, rule: String)
    /// One tensor breaks a rule.
    case invalidTensor(file: String, tensor: String, rule: String)
    /// The tensors do not form a model we recognise; all problems at once.
    case architecture(file: String, problems: [String])
    /// One graph node (ONNX) is malformed or unsupported.
    case invalidNode(file: String, node: String, rule: String)
    /// Several graph nodes are unsupported; all listed.
    case unsupportedNodes(file: String, nodes: [String])

    public var description: String {
        switch self {
        case .unreadable(let file, let reason):
            return "\(file): cannot read: \(reason)"
        case .unrecognizedFormat(let file, let reason):
            return "\(file): not a supported model file (safetensors, ONNX, HDF5, PyTorch or IdleViT bundle): \(reason)"
        case .invalidFile(let file, let format, let rule):
            return "\(file): invalid \(format): \(rule)"
        case .invalidTensor(let file, let tensor, let rule):
            return "\(file): tensor '\(tensor)': \(rule)"
        case .architecture(let file, let problems):
            // The recognisers cap their own lists (`Problems`) and put the fatal reason last.
            return "\(file): not a recognised ViT checkpoint: " + problems.joined(separator: "; ")
        case .invalidNode(let file, let node, let rule):
            return "\(file): node '\(node)': \(rule)"
        case .unsupportedNodes(let file, let nodes):
            return "\(file): \(nodes.count) unsupported node\(nodes.count == 1 ? "" : "s"): " + listed(nodes)
        }
    }
}

/// Nodes of a file in one line, but at most the first 20: a hostile file of 20,000
/// unsupported nodes must not print a line of half a megabyte.
private func listed(_ items: [String]) -> String {
    let shown = 20
    guard items.count > shown else { return items.joined(separator: "; ") }
    return items.prefix(shown).joined(separator: "; ") + "; and \(items.count - shown) more"
}

/// The last path component, for messages, escaped (`escapedForMessage`): a file name with a
/// newline or an ANSI escape cannot break or colour the one-line error.
public func displayName(_ path: String) -> String {
    (path.split(separator: "/").last.map(String.init) ?? path).escapedForMessage
}
