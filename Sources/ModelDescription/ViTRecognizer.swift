import IR
import Importers

/// The ViT family's recogniser (DeiT, distilled DeiT, DeiT-III, timm ViT): tensor roles by
/// naming scheme, architecture from shapes, every tensor checked against `ViTTensors`.
enum ViTRecognizer {
    static func recognize(_ source: WeightSet, options: RecognitionOptions, config: ModelConfigFile?) throws(ImportError) -> RecognizedModel {
        let file = displayName(source.file)
        let scheme = NamingScheme.all.max { count(source, $0) < count(source, $1) } ?? .timm
        var problems = Problems()
        for counter in source.counters { problems.add("unexpected tensor '\(counter.escapedForMessage)'") }
        if let skipLam = options.skipLam {
            problems.add("skip_lam \(formatDouble(skipLam)) (\(options.skipLamSource)) applies to LV-ViT, and this is a ViT-family checkpoint")
        }
        let assignment = RoleAssignment(source, scheme: scheme, problems: &problems)
        let depth = assignment.depth
        func weight(_ role: TensorRole, _ block: Int? = nil) -> Weight? { assignment.weight(role, block) }

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
        let stored = StoredArchitecture(source.metadata)
        let (heads, headsSource) = firstGiven([
            (options.heads, options.headsSource), (config?.heads, ModelConfigFile.fileName), (stored.heads, "file metadata"),
        ], otherwise: (dim % 64 == 0 ? dim / 64 : 0, "dim / 64 (DeiT head size)"))
        if heads <= 0 { problems.add("cannot infer attention heads for dim \(dim) (not a multiple of 64): pass --heads") }
        notes.append("heads: \(heads) from \(headsSource)")
        let (eps, epsSource) = firstGiven([
            (options.layerNormEps, options.layerNormEpsSource), (config?.layerNormEps, ModelConfigFile.fileName),
            (stored.layerNormEps, "file metadata"),
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
        guard let canonical = assignment.canonical(ViTTensors.expected(architecture), source: source, problems: &problems) else {
            throw .architecture(file: file, problems: problems.list)
        }
        let preprocessing = config?.preprocessing ?? Preprocessing.defaults(for: architecture)
        notes.append("preprocessing: \(preprocessing)")
        return RecognizedModel(architecture: architecture, weights: canonical, scheme: scheme.name, preprocessing: preprocessing,
                               labels: config?.labels, notes: notes)
    }

    static func count(_ set: WeightSet, _ scheme: NamingScheme) -> Int {
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
