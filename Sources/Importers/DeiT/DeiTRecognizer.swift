import Foundation
import IR

/// What the user (or a config file) says that weights cannot.
public struct RecognitionOptions: Sendable {
    /// Attention heads; DeiT's head size 64 gives dim / 64 when nothing says otherwise.
    public var heads: Int?
    public var layerNormEps: Double?
    /// Where `heads` and `layerNormEps` came from, for `inspect` ("--heads", "ONNX graph").
    public var headsSource = "--heads"
    public var layerNormEpsSource = "option"

    public init(heads: Int? = nil, layerNormEps: Double? = nil) {
        self.heads = heads
        self.layerNormEps = layerNormEps
    }
}

/// A checkpoint recognised as DeiT: its architecture and its weights under canonical timm
/// names (q, k, v fused into qkv where the source kept them apart).
public struct RecognizedDeiT: Sendable {
    public var architecture: DeiTArchitecture
    public var weights: WeightSet
    public var scheme: String
    /// Where heads and eps came from, for `inspect`.
    public var notes: [String]
}

/// Maps a weight set onto DeiT: picks the naming scheme, renames and fuses tensors, infers
/// the architecture from shapes (DESIGN §2) and checks every tensor against it. Missing,
/// unexpected and mis-shaped tensors are all reported in one error.
public enum DeiTRecognizer {
    public static func recognize(_ source: WeightSet, options: RecognitionOptions = RecognitionOptions(),
                                 config: HuggingFaceConfig? = nil) throws(ImportError) -> RecognizedDeiT {
        let file = displayName(source.file)
        let scheme = NamingScheme.all.max { count(source, $0) < count(source, $1) }!
        var problems: [String] = []

        // Rename.
        var renamed = WeightSet(file: source.file, format: source.format, metadata: source.metadata)
        var origin: [String: String] = [:]
        for weight in source.weights {
            guard let canonical = scheme.canonicalName(for: weight.name) else {
                problems.append("unexpected tensor '\(weight.name)'")
                continue
            }
            if let first = origin[canonical] {
                problems.append("tensors '\(first)' and '\(weight.name)' both map to '\(canonical)'")
                continue
            }
            origin[canonical] = weight.name
            renamed.append(Weight(name: canonical, tensor: weight.tensor, sourceType: weight.sourceType))
        }

        let depth = (renamed.names.compactMap(blockIndex).max() ?? -1) + 1

        // Fuse parts (Hugging Face q, k, v -> qkv).
        var fusedParts = Set<String>()
        for fusion in scheme.fusions {
            for i in 0..<depth {
                let parts = fusion.parts.map { $0.replacingOccurrences(of: "{i}", with: String(i)) }
                let target = fusion.canonical.replacingOccurrences(of: "{i}", with: String(i))
                let present = parts.compactMap { renamed[$0] }
                if present.isEmpty { continue }
                fusedParts.formUnion(parts)
                guard present.count == parts.count else {
                    problems.append("'\(target)' needs \(parts.filter { renamed[$0] == nil }.map { "'\($0)'" }.joined(separator: ", "))")
                    continue
                }
                let trailing = Array(present[0].shape.dropFirst())
                guard present.allSatisfy({ Array($0.shape.dropFirst()) == trailing }) else {
                    problems.append("parts of '\(target)' have shapes \(present.map { describeShape($0.shape) }.joined(separator: ", ")) that do not stack")
                    continue
                }
                renamed.append(Weight(name: target, tensor: concatenate(present.map(\.tensor)), sourceType: present[0].sourceType))
            }
        }

        // Architecture from shapes.
        guard let patchWeight = renamed["patch_embed.proj.weight"], patchWeight.shape.count == 4,
              patchWeight.shape[2] == patchWeight.shape[3], patchWeight.shape[2] > 0 else {
            let found = renamed["patch_embed.proj.weight"].map { " (found \(describeShape($0.shape)))" } ?? " (missing)"
            throw .architecture(file: file, problems: problems + ["needs 'patch_embed.proj.weight' of shape [C, 3, P, P]\(found)"])
        }
        let dim = patchWeight.shape[0]
        let patch = patchWeight.shape[2]
        let distilled = renamed["dist_token"] != nil
        let prefix = distilled ? 2 : 1
        var imageSize = 0
        if let pos = renamed["pos_embed"], pos.shape.count == 3, pos.shape[1] > prefix {
            let patches = pos.shape[1] - prefix
            let side = Int(Double(patches).squareRoot().rounded())
            if side * side == patches { imageSize = side * patch } else {
                problems.append("'pos_embed' holds \(patches) patch positions, not a square grid")
            }
        } else {
            problems.append("needs 'pos_embed' of shape [1, N, \(dim)]")
        }
        let mlpHidden = renamed["blocks.0.mlp.fc1.weight"]?.shape.first ?? 4 * dim
        let classes = renamed["head.weight"]?.shape.first ?? 0
        if depth == 0 { problems.append("no transformer blocks ('blocks.{i}.*') found") }
        if classes == 0 { problems.append("needs 'head.weight' of shape [classes, \(dim)]") }

        // What weights cannot tell, by precedence: the user's option, config.json, the file's
        // own metadata, then the DeiT default.
        var notes: [String] = ["naming: \(scheme.name)"]
        let stored = source.metadata["architecture"].flatMap { try? JSONParser.parse($0) }
        let (heads, headsSource) = firstGiven([
            (options.heads, options.headsSource), (config?.heads, "config.json"),
            (stored?["num_heads"]?.intValue ?? source.metadata["num_heads"].flatMap(Int.init), "file metadata"),
        ], otherwise: (dim % 64 == 0 ? dim / 64 : 0, "dim / 64 (DeiT head size)"))
        if heads <= 0 || dim % max(heads, 1) != 0 {
            problems.append(heads <= 0 ? "cannot infer attention heads for dim \(dim) (not a multiple of 64): pass --heads"
                                       : "\(heads) heads do not divide dim \(dim)")
        }
        notes.append("heads: \(heads) from \(headsSource)")
        let (eps, epsSource) = firstGiven([
            (options.layerNormEps, options.layerNormEpsSource), (config?.layerNormEps, "config.json"),
            (stored?["layer_norm_eps"]?.doubleValue, "file metadata"),
        ], otherwise: (1e-6, "timm default"))
        notes.append("layer norm eps: \(eps) from \(epsSource)")
        if let config {
            if let hidden = config.hiddenSize, hidden != dim { problems.append("config.json hidden_size \(hidden) but weights have dim \(dim)") }
            if let layers = config.layers, layers != depth { problems.append("config.json num_hidden_layers \(layers) but weights have \(depth) blocks") }
        }

        let architecture = DeiTArchitecture(imageSize: imageSize, patchSize: patch, inChannels: patchWeight.shape[1], embedDim: dim,
                                            depth: depth, heads: max(heads, 1), mlpHidden: mlpHidden, classes: classes,
                                            distilled: distilled, layerNormEps: eps)

        // Every tensor against the table of what this architecture needs.
        let expected = expectedTensors(architecture)
        let expectedNames = Set(expected.map(\.name))
        for (name, shape) in expected {
            guard let weight = renamed[name] else { problems.append("missing tensor '\(name)' \(describeShape(shape))"); continue }
            if weight.shape != shape {
                problems.append("tensor '\(origin[name] ?? name)' has shape \(describeShape(weight.shape)), expected \(describeShape(shape))")
            }
        }
        for name in renamed.names where !expectedNames.contains(name) && !fusedParts.contains(name) {
            problems.append("unexpected tensor '\(origin[name] ?? name)'")
        }
        var seen = Set<String>()
        problems = problems.filter { seen.insert($0).inserted }
        guard problems.isEmpty else { throw .architecture(file: file, problems: problems) }

        var canonical = WeightSet(file: source.file, format: source.format, metadata: source.metadata)
        for (name, _) in expected { canonical.append(renamed[name]!) }
        return RecognizedDeiT(architecture: architecture, weights: canonical, scheme: scheme.name, notes: notes)
    }

    /// Canonical timm tensors of a DeiT, in state-dict order, with their shapes.
    public static func expectedTensors(_ a: DeiTArchitecture) -> [(name: String, shape: [Int])] {
        let c = a.embedDim
        var list: [(String, [Int])] = [("cls_token", [1, 1, c])]
        if a.distilled { list.append(("dist_token", [1, 1, c])) }
        list += [
            ("pos_embed", [1, a.tokenCount, c]),
            ("patch_embed.proj.weight", [c, a.inChannels, a.patchSize, a.patchSize]),
            ("patch_embed.proj.bias", [c]),
        ]
        for i in 0..<a.depth {
            let b = "blocks.\(i)."
            list += [
                (b + "norm1.weight", [c]), (b + "norm1.bias", [c]),
                (b + "attn.qkv.weight", [3 * c, c]), (b + "attn.qkv.bias", [3 * c]),
                (b + "attn.proj.weight", [c, c]), (b + "attn.proj.bias", [c]),
                (b + "norm2.weight", [c]), (b + "norm2.bias", [c]),
                (b + "mlp.fc1.weight", [a.mlpHidden, c]), (b + "mlp.fc1.bias", [a.mlpHidden]),
                (b + "mlp.fc2.weight", [c, a.mlpHidden]), (b + "mlp.fc2.bias", [c]),
            ]
        }
        list += [("norm.weight", [c]), ("norm.bias", [c]), ("head.weight", [a.classes, c]), ("head.bias", [a.classes])]
        if a.distilled { list += [("head_dist.weight", [a.classes, c]), ("head_dist.bias", [a.classes])] }
        return list
    }

    /// The first value present, with where it came from.
    private static func firstGiven<T>(_ candidates: [(T?, String)], otherwise fallback: (T, String)) -> (T, String) {
        for case let (value?, source) in candidates { return (value, source) }
        return fallback
    }

    private static func count(_ set: WeightSet, _ scheme: NamingScheme) -> Int {
        set.names.reduce(0) { $0 + (scheme.canonicalName(for: $1) == nil ? 0 : 1) }
    }

    private static func blockIndex(_ name: String) -> Int? {
        guard name.hasPrefix("blocks.") else { return nil }
        return Int(name.dropFirst(7).prefix { $0.isNumber })
    }

    private static func concatenate(_ parts: [FloatTensor]) -> FloatTensor {
        let total = parts.reduce(0) { $0 + $1.count }
        let (storage, memory) = TensorStorage.allocate(byteCount: total * 4)
        var offset = 0
        for part in parts {
            (memory + offset * 4).copyMemory(from: part.pointer, byteCount: part.count * 4)
            offset += part.count
        }
        let shape = [parts.reduce(0) { $0 + $1.shape[0] }] + parts[0].shape.dropFirst()
        return FloatTensor(shape: shape, storage: storage, pointer: UnsafePointer(memory.assumingMemoryBound(to: Float.self)))
    }
}

/// The few fields of a Hugging Face `config.json` that weights cannot tell.
public struct HuggingFaceConfig: Sendable {
    public var heads: Int?
    public var layerNormEps: Double?
    public var hiddenSize: Int?
    public var layers: Int?
    public var labels: [Int: String]

    /// Reads `config.json` in the folder of `modelPath`, if there is one.
    public static func load(nextTo modelPath: String) throws(ImportError) -> HuggingFaceConfig? {
        let folder = URL(fileURLWithPath: modelPath).deletingLastPathComponent()
        let url = folder.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        // Never blocks (a FIFO) and never reads more than the limit (RegularFile).
        let data: [UInt8]
        do { data = try RegularFile.read(url.path, limit: Limits.textFileBytes) } catch {
            throw .unreadable(file: "config.json", reason: error.reason)
        }
        let json: JSONValue
        do { json = try JSONParser.parse(data) } catch {
            throw .invalidFile(file: "config.json", format: "JSON", rule: error.description)
        }
        guard json.objectPairs != nil else { throw .invalidFile(file: "config.json", format: "JSON", rule: "not an object") }
        var labels: [Int: String] = [:]
        for pair in json["id2label"]?.objectPairs ?? [] {
            if let index = Int(pair.key), let label = pair.value.stringValue { labels[index] = label }
        }
        return HuggingFaceConfig(heads: json["num_attention_heads"]?.intValue, layerNormEps: json["layer_norm_eps"]?.doubleValue,
                                 hiddenSize: json["hidden_size"]?.intValue, layers: json["num_hidden_layers"]?.intValue,
                                 labels: labels)
    }
}
