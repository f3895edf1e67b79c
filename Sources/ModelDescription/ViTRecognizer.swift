import IR
import Importers

/// The ViT family's recogniser (DeiT, distilled DeiT, DeiT-III, timm ViT): tensor roles by
/// naming scheme, architecture from shapes, every tensor checked against `ViTTensors`.
enum ViTRecognizer {
    /// A role in one block (nil for global tensors), and the part of a fused role.
    private struct Slot: Hashable {
        var role: TensorRole
        var block: Int?
    }

    static func recognize(_ source: WeightSet, options: RecognitionOptions, config: ModelConfigFile?) throws(ImportError) -> RecognizedModel {
        let file = displayName(source.file).escapedForMessage
        let scheme = NamingScheme.all.max { count(source, $0) < count(source, $1) } ?? .timm
        var problems = Problems()

        // Every tensor to its role; parts of fused roles collected in order.
        var found: [Slot: Weight] = [:]
        var parts: [Slot: [Int: Weight]] = [:]
        var origin: [Slot: String] = [:]
        var depth = 0
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
        func weight(_ role: TensorRole, _ block: Int? = nil) -> Weight? { found[Slot(role: role, block: role.isPerBlock ? (block ?? 0) : nil)] }

        // Architecture from shapes; every extent is bounded before it is multiplied.
        guard let patchWeight = weight(.patchWeight), patchWeight.shape.count == 4, patchWeight.shape[2] == patchWeight.shape[3],
              Limits.embedDim.contains(patchWeight.shape[0]), Limits.channels.contains(patchWeight.shape[1]),
              Limits.patchSize.contains(patchWeight.shape[2]) else {
            let seen = weight(.patchWeight).map { " (found \(describeShape($0.shape)))" } ?? " (missing)"
            throw .architecture(file: file, problems: problems.list + ["needs 'patch_embed.proj.weight' of shape [C, 3, P, P] within \(Limits.embedDim), \(Limits.channels), \(Limits.patchSize)\(seen)"])
        }
        let dim = patchWeight.shape[0], patch = patchWeight.shape[2]
        let distilled = weight(.distillationToken) != nil
        let prefix = distilled ? 2 : 1
        var imageSize = 0
        var prefixPositions = true
        if let pos = weight(.positionEmbedding), pos.shape.count == 3, pos.shape[0] == 1, Limits.tokens.contains(pos.shape[1]) {
            // DeiT: rows for the prefix tokens and the patches; DeiT-III: the patches only.
            // Two squares never differ by 1 or 2 (beyond 0 and 1), so one reading fits.
            if let side = squareSide(pos.shape[1] - prefix) {
                imageSize = side * patch
            } else if let side = squareSide(pos.shape[1]) {
                imageSize = side * patch
                prefixPositions = false
            } else {
                problems.add("'pos_embed' holds \(pos.shape[1]) positions: neither \(prefix) prefix tokens plus a square grid of patches nor a square grid alone")
            }
        } else {
            problems.add("needs 'pos_embed' of shape [1, N, \(dim)] with N in \(Limits.tokens)")
        }
        let mlpHidden = weight(.fc1Weight)?.shape.first ?? 4 * dim
        let classes = weight(.headWeight)?.shape.first ?? 0
        if depth == 0 { problems.add("no transformer blocks ('\(TensorRole.norm1Weight.canonicalName)' ...) found") }
        if classes == 0 { problems.add("needs 'head.weight' of shape [classes, \(dim)]") }

        // What weights cannot tell, by precedence: the user's option, config.json, the file's
        // own metadata, then the DeiT default.
        var notes: [String] = ["naming: \(scheme.name)"]
        let stored = source.metadata["architecture"].flatMap { try? JSONParser.parse($0) }
        let storedHeads = stored?["num_heads"]?.intValue ?? source.metadata["num_heads"].flatMap { Int($0, radix: 10) }
        let (heads, headsSource) = firstGiven([
            (options.heads, options.headsSource), (config?.heads, ModelConfigFile.fileName), (storedHeads, "file metadata"),
        ], otherwise: (dim % 64 == 0 ? dim / 64 : 0, "dim / 64 (DeiT head size)"))
        if heads <= 0 { problems.add("cannot infer attention heads for dim \(dim) (not a multiple of 64): pass --heads") }
        notes.append("heads: \(heads) from \(headsSource)")
        let (eps, epsSource) = firstGiven([
            (options.layerNormEps, options.layerNormEpsSource), (config?.layerNormEps, ModelConfigFile.fileName),
            (stored?["layer_norm_eps"]?.doubleValue, "file metadata"),
        ], otherwise: (1e-6, "timm default"))
        notes.append("layer norm eps: \(eps) from \(epsSource)")
        if let config {
            if let hidden = config.hiddenSize, hidden != dim { problems.add("config.json hidden_size \(hidden) but weights have dim \(dim)") }
            if let layers = config.layers, layers != depth { problems.add("config.json num_hidden_layers \(layers) but weights have \(depth) blocks") }
        }
        // Without these the tensors cannot be checked against anything: report what is known.
        guard imageSize > 0, depth > 0, classes > 0, heads > 0 else { throw .architecture(file: file, problems: problems.list) }

        let architecture = ModelArchitecture(
            family: .vit, imageSize: imageSize, patchSize: patch, inChannels: patchWeight.shape[1], embedDim: dim, depth: depth,
            heads: heads, mlpHidden: mlpHidden, classes: classes, distilled: distilled, layerNormEps: eps,
            qkvBias: weight(.qkvBias) != nil, layerScale: weight(.layerScale1) != nil, prefixPositions: prefixPositions)
        do { try architecture.validate() } catch {
            problems.add(error.description)
            throw .architecture(file: file, problems: problems.list)
        }

        // Every tensor against the table of what this architecture needs.
        let expected = ViTTensors.expected(architecture)
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
        guard problems.isEmpty else { throw .architecture(file: file, problems: problems.list) }

        var canonical = WeightSet(file: source.file, format: source.format, metadata: source.metadata)
        for tensor in expected {
            let weight = found[Slot(role: tensor.role, block: tensor.block)]!
            canonical.append(Weight(name: tensor.name, tensor: weight.tensor, sourceType: weight.sourceType))
        }
        let preprocessing = config?.preprocessing ?? Preprocessing.defaults(for: architecture)
        notes.append("preprocessing: \(preprocessing)")
        return RecognizedModel(architecture: architecture, weights: canonical, scheme: scheme.name, preprocessing: preprocessing,
                               labels: config?.labels, notes: notes)
    }

    /// The side of a square grid of `count` cells, if it is one.
    private static func squareSide(_ count: Int) -> Int? {
        guard count > 0 else { return nil }
        let side = Int(Double(count).squareRoot().rounded())
        return side * side == count ? side : nil
    }

    /// The first value present, with where it came from.
    private static func firstGiven<T>(_ candidates: [(T?, String)], otherwise fallback: (T, String)) -> (T, String) {
        for case let (value?, source) in candidates { return (value, source) }
        return fallback
    }

    private static func count(_ set: WeightSet, _ scheme: NamingScheme) -> Int {
        set.names.reduce(0) { $0 + (scheme.role(of: $1) == nil ? 0 : 1) }
    }
}

/// Problems found while recognising, each once, in order, at most a screenful.
struct Problems {
    private(set) var list: [String] = []
    private var seen = Set<String>()

    var isEmpty: Bool { list.isEmpty }

    mutating func add(_ problem: String) {
        guard seen.insert(problem).inserted else { return }
        if list.count < 20 { list.append(problem) } else if list.count == 20 { list.append("and more") }
    }
}
