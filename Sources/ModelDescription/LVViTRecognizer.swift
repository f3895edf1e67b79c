import IR
import Importers

/// LV-ViT's recogniser: the official names (`NamingScheme.lvvit`), the architecture from
/// shapes, every tensor checked against `LVViTTensors`. What weights cannot tell comes, by
/// precedence, from the user's option, the source (an ONNX graph's Div states skip_lam), a
/// config.json, the file's own metadata (bundles), the published configuration with this
/// geometry, and last LV-ViT's defaults (head size 64, skip_lam 2, LayerNorm eps 1e-5).
enum LVViTRecognizer {
    /// Roles only an LV-ViT has: a weight set holding one of them is recognised as LV-ViT.
    private static let ownRoles: Set<TensorRole> = Set(LVViTTensors.roles).subtracting(ViTTensors.roles)

    static func claims(_ source: WeightSet) -> Bool {
        return source.names.contains { name in NamingScheme.lvvit.role(of: name).map { ownRoles.contains($0.role) } ?? false }
    }

    static func recognize(_ source: WeightSet, options: RecognitionOptions, config: ModelConfigFile?) throws(ImportError) -> RecognizedModel {
        let file = displayName(source.file)
        var problems = Problems()
        let assignment = RoleAssignment(source, scheme: .lvvit, problems: &problems)
        let depth = assignment.depth
        func weight(_ role: TensorRole) -> Weight? { assignment.weight(role) }

        // The stem: conv1 [w, Ci, 7, 7] gives its width and the image channels; the projection
        // [C, w, P/2, P/2] the embedding width and the patch.
        guard let conv1 = weight(.stemConv1Weight), conv1.shape.count == 4, conv1.shape[2] == 7, conv1.shape[3] == 7,
              Limits.embedDim.contains(conv1.shape[0]), Limits.channels.contains(conv1.shape[1]) else {
            let seen = weight(.stemConv1Weight).map { " (found \(describeShape($0.shape)))" } ?? " (missing)"
            throw .architecture(file: file, problems: problems.list + [
                "needs 'patch_embed.conv1.weight' of shape [W, 3, 7, 7] with W in \(Limits.embedDim)\(seen)"])
        }
        let stemChannels = conv1.shape[0]
        guard let proj = weight(.patchWeight), proj.shape.count == 4, proj.shape[2] == proj.shape[3], proj.shape[1] == stemChannels,
              Limits.embedDim.contains(proj.shape[0]), Limits.patchSize.contains(2 * proj.shape[2]) else {
            let seen = weight(.patchWeight).map { " (found \(describeShape($0.shape)))" } ?? " (missing)"
            throw .architecture(file: file, problems: problems.list + [
                "needs 'patch_embed.proj.weight' of shape [C, \(stemChannels), P/2, P/2] within \(Limits.embedDim), \(Limits.patchSize)\(seen)"])
        }
        let dim = proj.shape[0], patch = 2 * proj.shape[2]
        var imageSize = 0
        if let pos = weight(.positionEmbedding), pos.shape.count == 3, pos.shape[0] == 1, Limits.tokens.contains(pos.shape[1]) {
            if let side = squareSide(pos.shape[1] - 1) {
                imageSize = side * patch
            } else {
                problems.add("'pos_embed' holds \(pos.shape[1]) positions, not the class token plus a square grid of patches")
            }
        } else {
            problems.add("needs 'pos_embed' of shape [1, N, \(dim)] with N in \(Limits.tokens)")
        }
        let mlpHidden = weight(.fc1Weight)?.shape.first ?? 3 * dim
        let classes = weight(.headWeight)?.shape.first ?? 0
        if depth == 0 { problems.add("no transformer blocks ('\(TensorRole.norm1Weight.canonicalName)' ...) found") }
        if classes == 0 { problems.add("needs 'head.weight' of shape [classes, \(dim)]") }
        // BatchNorm present (a checkpoint) or folded into conv biases (an ONNX export).
        let stemBatchNorm = weight(.stemNorm1Weight) != nil || weight(.stemConv1Bias) == nil

        let stored = StoredArchitecture(source.metadata)
        let published = LVViTTensors.published(dim: dim, depth: depth, stemChannels: stemChannels, patchSize: patch, mlpHidden: mlpHidden)
        let publishedSource = published.map { "TokenLabeling's \($0.name)" } ?? ""
        var notes: [String] = ["naming: \(NamingScheme.lvvit.name)"]
        let (heads, headsSource) = firstGiven([
            (options.heads, options.headsSource), (config?.heads, ModelConfigFile.fileName), (stored.heads, "file metadata"),
            (published?.heads, publishedSource),
        ], otherwise: (dim % 64 == 0 ? dim / 64 : 0, "dim / 64 (LV-ViT head size)"))
        if heads <= 0 { problems.add("cannot infer attention heads for dim \(dim) (not a multiple of 64): pass --heads") }
        notes.append("heads: \(heads) from \(headsSource)")
        let (eps, epsSource) = firstGiven([
            (options.layerNormEps, options.layerNormEpsSource), (config?.layerNormEps, ModelConfigFile.fileName),
            (stored.layerNormEps, "file metadata"),
        ], otherwise: (LVViTTensors.layerNormEps, "torch's nn.LayerNorm default"))
        notes.append("layer norm eps: \(eps) from \(epsSource)")
        let (skipLam, skipLamSource) = firstGiven([
            (options.skipLam, options.skipLamSource), (stored.skipLam, "file metadata"), (published?.skipLam, publishedSource),
        ], otherwise: (2, "LV-ViT-S/M's value"))
        notes.append("skip_lam: \(formatDouble(skipLam)) from \(skipLamSource)")
        guard imageSize > 0, depth > 0, classes > 0, heads > 0 else { throw .architecture(file: file, problems: problems.list) }

        let architecture = ModelArchitecture(
            family: .lvvit, imageSize: imageSize, patchSize: patch, inChannels: conv1.shape[1], embedDim: dim, depth: depth,
            heads: heads, mlpHidden: mlpHidden, classes: classes, distilled: false, layerNormEps: eps,
            qkvBias: weight(.qkvBias) != nil, layerScale: false, prefixPositions: true, stemChannels: stemChannels,
            stemBatchNorm: stemBatchNorm, skipLam: skipLam, auxHead: weight(.auxHeadWeight) != nil)
        do { try architecture.validate() } catch {
            problems.add(error.description)
            throw .architecture(file: file, problems: problems.list)
        }
        // BatchNorm's counters belong to the stem's BatchNorms; only training reads them.
        let counterNames = Set(LVViTStem.stages.map { String($0.normWeight.canonicalName.text.dropLast(".weight".count)) + BatchNormCounter.suffix })
        for counter in source.counters where !(stemBatchNorm && counterNames.contains(NamingScheme.lvvit.stripped(counter))) {
            problems.add("unexpected tensor '\(counter.escapedForMessage)'")
        }
        if !source.counters.isEmpty { notes.append("BatchNorm num_batches_tracked: \(source.counters.count), not used for inference") }

        guard let canonical = assignment.canonical(LVViTTensors.expected(architecture), source: source, problems: &problems) else {
            throw .architecture(file: file, problems: problems.list)
        }
        let crop = architecture.imageSize >= 384 ? 1.0 : (published?.cropPercent ?? 0.9)
        let preprocessing = config?.preprocessing ?? Preprocessing(mean: Preprocessing.imageNetMean, std: Preprocessing.imageNetStd,
                                                                   cropPercent: crop, source: "LV-ViT default")
        notes.append("preprocessing: \(preprocessing)")
        return RecognizedModel(architecture: architecture, weights: canonical, scheme: NamingScheme.lvvit.name,
                               preprocessing: preprocessing, labels: config?.labels, notes: notes)
    }

    /// TokenLabeling's name for a published configuration with this geometry (`lvvit_s`).
    static func publishedName(_ a: ModelArchitecture) -> String? {
        guard a.family == .lvvit, !a.qkvBias,
              let published = LVViTTensors.published(dim: a.embedDim, depth: a.depth, stemChannels: a.stemChannels,
                                                     patchSize: a.patchSize, mlpHidden: a.mlpHidden),
              published.heads == a.heads, published.skipLam == a.skipLam else { return nil }
        return published.name
    }
}
