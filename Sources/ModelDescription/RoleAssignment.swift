import IR
import Importers

/// Every tensor of a checkpoint given its role under one naming scheme: the first step of each
/// family's recogniser. Parts of a fused role (Hugging Face's q, k, v) are stacked into one
/// tensor; names the scheme does not know, bad block indices and duplicates are problems.
struct RoleAssignment {
    /// A role in one block (nil for global tensors).
    struct Slot: Hashable {
        var role: TensorRole
        var block: Int?
    }

    private(set) var found: [Slot: Weight] = [:]
    /// The source name each slot came from (escaped), for messages.
    private(set) var origin: [Slot: String] = [:]
    /// One more than the highest block index seen.
    private(set) var depth = 0

    init(_ source: WeightSet, scheme: NamingScheme, problems: inout Problems) {
        var parts: [Slot: [Int: Weight]] = [:]
        for weight in source.weights {
            let name = weight.name.escapedForMessage
            guard let (role, match, part) = scheme.role(of: weight.name) else {
                problems.add("unexpected tensor '\(name)'")
                continue
            }
            var block: Int?
            switch match {
            case .global: break
            case .block(let index):
                block = index
                depth = max(depth, index + 1)
            case .badIndex(let text):
                problems.add("tensor '\(name)' has block index \(text.prefix(24)), outside 0..<\(Limits.depth.maximum)")
                continue
            }
            let slot = Slot(role: role, block: block)
            if let part {
                guard parts[slot, default: [:]][part] == nil else { problems.add("tensor '\(name)' appears twice"); continue }
                parts[slot, default: [:]][part] = weight
            } else {
                if let first = origin[slot] {
                    problems.add("tensors '\(first)' and '\(name)' both map to '\(role.name(block: block ?? 0))'")
                    continue
                }
                found[slot] = weight
            }
            origin[slot] = origin[slot] ?? name
        }
        // Fuse parts (Hugging Face q, k, v -> qkv).
        for (slot, pieces) in parts.sorted(by: { $0.value.first?.value.name ?? "" < $1.value.first?.value.name ?? "" }) {
            guard case .parts(let templates)? = scheme.sources.first(where: { $0.role == slot.role })?.source else { continue }
            let names = templates.map { $0.name(block: slot.block ?? 0).escapedForMessage }
            guard pieces.count == templates.count else {
                let missing = names.indices.filter { pieces[$0] == nil }.map { "'\(names[$0])'" }
                problems.add("'\(slot.role.name(block: slot.block ?? 0))' needs \(missing.joined(separator: ", "))")
                continue
            }
            let ordered = (0..<templates.count).map { pieces[$0]! }
            let trailing = Array(ordered[0].shape.dropFirst())
            guard ordered.allSatisfy({ Array($0.shape.dropFirst()) == trailing }), ordered.allSatisfy({ !$0.shape.isEmpty }) else {
                problems.add("parts of '\(slot.role.name(block: slot.block ?? 0))' have shapes \(ordered.map { describeShape($0.shape) }.joined(separator: ", ")) that do not stack")
                continue
            }
            found[slot] = Weight(name: slot.role.name(block: slot.block ?? 0), tensor: FloatTensor.stacking(ordered.map(\.tensor)),
                                 sourceType: ordered[0].sourceType)
        }
    }

    func weight(_ role: TensorRole, _ block: Int? = nil) -> Weight? { found[Slot(role: role, block: role.isPerBlock ? (block ?? 0) : nil)] }

    /// Checks every tensor against what the architecture needs (missing, mis-shaped, extra) and
    /// returns the canonical weight set in the table's (state-dict) order. Call only when
    /// `problems` is otherwise settled: the weights are returned only if there are none.
    func canonical(_ expected: [ExpectedTensor], source: WeightSet, problems: inout Problems) -> WeightSet? {
        let expectedSlots = Set(expected.map { Slot(role: $0.role, block: $0.block) })
        for tensor in expected {
            let slot = Slot(role: tensor.role, block: tensor.block)
            guard let found = found[slot] else { problems.add("missing tensor '\(tensor.name)' \(describeShape(tensor.shape))"); continue }
            if found.shape != tensor.shape {
                problems.add("tensor '\(origin[slot] ?? tensor.name)' has shape \(describeShape(found.shape)), expected \(describeShape(tensor.shape))")
            }
        }
        for slot in found.keys.sorted(by: { (origin[$0] ?? "") < (origin[$1] ?? "") }) where !expectedSlots.contains(slot) {
            problems.add("unexpected tensor '\(origin[slot] ?? slot.role.name(block: slot.block ?? 0))'")
        }
        guard problems.isEmpty else { return nil }
        var canonical = WeightSet(file: source.file, format: source.format, metadata: source.metadata)
        for tensor in expected {
            let weight = found[Slot(role: tensor.role, block: tensor.block)]!
            canonical.append(Weight(name: tensor.name, tensor: weight.tensor, sourceType: weight.sourceType))
        }
        return canonical
    }
}

/// What a file's own metadata says of the architecture, for the recognisers' precedence lists
/// (after the user's options and config.json): a bundle's `architecture` JSON, or a plain
/// `num_heads` entry as some exporters write into safetensors' `__metadata__`.
struct StoredArchitecture {
    private let json: JSONValue?
    private let plainHeads: Int?

    init(_ metadata: [String: String]) {
        json = metadata["architecture"].flatMap { try? JSONParser.parse($0) }
        plainHeads = metadata["num_heads"].flatMap { Int($0, radix: 10) }
    }

    var heads: Int? { json?["num_heads"]?.intValue ?? plainHeads }
    var layerNormEps: Double? { json?["layer_norm_eps"]?.doubleValue }
    var skipLam: Double? { json?["skip_lam"]?.doubleValue }
}

/// The first value present, with where it came from.
func firstGiven<T>(_ candidates: [(T?, String)], otherwise fallback: (T, String)) -> (T, String) {
    for case let (value?, source) in candidates { return (value, source) }
    return fallback
}

/// The side of a square grid of `count` cells, if it is one.
func squareSide(_ count: Int) -> Int? {
    guard count > 0 else { return nil }
    let side = Int(Double(count).squareRoot().rounded())
    return side * side == count ? side : nil
}
