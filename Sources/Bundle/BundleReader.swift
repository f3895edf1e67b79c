import IR
import Importers
import ModelDescription
import Passes

/// What a validated bundle says about itself.
public struct BundleInfo: Sendable {
    public var formatVersion: Int
    public var dtype: ElementType
    public var producer: String
    public var source: BundleSource
    public var architecture: ModelArchitecture
    /// nil for a dense bundle.
    public var schedule: IdleSchedule?
    /// How images are prepared for the model; nil in bundles written before it was stored.
    public var preprocessing: Preprocessing?
    /// The stored graph, without weights.
    public var graph: Graph
    public var graphText: String

    /// Lines for `inspect`: bundle facts, provenance, schedule.
    public var details: [(String, String)] {
        var lines: [(String, String)] = [
            ("bundle", "format \(formatVersion), \(dtype.safetensorsName) tensors, written by \(producer.escapedForMessage)"),
            ("source", "\(source.file.escapedForMessage) (\(source.format)), sha256 \(source.sha256)"),
        ]
        if let schedule {
            let ratio = schedule.keepRatio.map { "r = \(formatDouble($0)); " } ?? ""
            let kept = schedule.kept.enumerated().compactMap { entry in entry.element.map { "\(entry.offset):\($0)" } }
            lines.append(("idle", ratio + "kept image tokens per layer " + kept.joined(separator: " ")))
        } else {
            lines.append(("idle", "none (dense bundle)"))
        }
        lines.append(("stored graph", "\(graph.nodes.count) nodes, checked against the model description and used as stored"))
        return lines
    }
}

/// Validates a bundle's metadata against DESIGN §5 and `Schemas/bundle.schema.json`, and
/// against the tensors beside it. Every violation is one `ImportError` line naming the file
/// and the metadata key, which the command line turns into exit status 2.
///
/// Two steps, so the loader can recognise the weights in between without converting them
/// twice: `readMetadata` checks everything the header alone can tell (keys, versions, JSON,
/// architecture vs tensor shapes, graph constants vs tensors, schedule vs depth and vs the
/// graph's `token_select` nodes); `resolve` checks the stored graph against the model
/// description of the recognised weights (`GraphConformance`: the description's dense graph,
/// with idle blocks where the schedule puts them), attaches the weights and hands the stored
/// graph back to run. The IdleViT rewrite is not run again.
public enum BundleReader {
    /// The one shape of every metadata complaint: file (a `displayName`, already escaped),
    /// format, key, what is wrong.
    static func badMetadata(_ file: String, _ key: String, _ rule: String) -> ImportError {
        .invalidFile(file: file, format: BundleFormat.displayName, rule: "metadata '\(key)' \(rule)")
    }

    public static func readMetadata(_ file: SafetensorsFile) throws(ImportError) -> BundleInfo {
        let name = displayName(file.path)
        func bad(_ key: String, _ rule: String) -> ImportError { badMetadata(name, key, rule) }
        let metadata = file.metadata
        for key in BundleKey.all where metadata[key] == nil { throw bad(key, "is missing") }
        let value = { (key: String) in metadata[key]! }
        func quoted(_ key: String) -> String { "'" + String(value(key).prefix(64)).escapedForMessage + "'" }

        guard value(BundleKey.format) == BundleFormat.name else { throw bad(BundleKey.format, "is \(quoted(BundleKey.format)), not '\(BundleFormat.name)'") }
        guard let version = strictPositiveInteger(value(BundleKey.formatVersion)) else {
            throw bad(BundleKey.formatVersion, "is \(quoted(BundleKey.formatVersion)), not a positive integer in decimal digits")
        }
        guard version == BundleFormat.version else {
            throw bad(BundleKey.formatVersion, "is \(version); this idlevit reads version \(BundleFormat.version)")
        }
        let producer = value(BundleKey.producer)
        guard producer.hasPrefix("idlevit "), producer.utf8.count <= 256 else { throw bad(BundleKey.producer, "is \(quoted(BundleKey.producer)), not 'idlevit <version>'") }

        guard let dtype = ElementType(rawValue: value(BundleKey.dtype)), [.f32, .f16, .bf16].contains(dtype) else {
            throw bad(BundleKey.dtype, "is \(quoted(BundleKey.dtype)), not one of f32, f16, bf16")
        }
        for entry in file.entries where entry.dtype.floatSource != dtype {
            throw bad(BundleKey.dtype, "says \(dtype.rawValue) but tensor '\(entry.name.escapedForMessage)' is stored as \(entry.dtype.rawValue)")
        }

        let source: BundleSource
        switch BundleSource.decode(value(BundleKey.source)) {
        case .success(let decoded): source = decoded
        case .failure(let problem): throw bad(BundleKey.source, problem.message)
        }

        let architecture = try decodeArchitecture(value(BundleKey.architecture)) { bad(BundleKey.architecture, $0) }
        // The architecture is valid (bounded), so the expected list is small.
        let tensors = Dictionary(file.entries.map { ($0.name, $0.shape) }, uniquingKeysWith: { first, _ in first })
        let expected = ModelDescription.expectedTensors(architecture)
        guard file.entries.count <= expected.count else {
            throw bad(BundleKey.architecture, "needs \(expected.count) tensors, the file has \(file.entries.count)")
        }
        for tensor in expected {
            guard let found = tensors[tensor.name] else { throw bad(BundleKey.architecture, "needs tensor '\(tensor.name)' \(describeShape(tensor.shape)), which the file lacks") }
            guard found == tensor.shape else {
                throw bad(BundleKey.architecture, "needs tensor '\(tensor.name)' of shape \(describeShape(tensor.shape)), the file has \(describeShape(found))")
            }
        }
        let expectedNames = Set(expected.map(\.name))
        if let extra = file.entries.map(\.name).sorted().first(where: { !expectedNames.contains($0) }) {
            throw bad(BundleKey.architecture, "has no place for tensor '\(extra.escapedForMessage)'")
        }

        let schedule = try decodeIdle(value(BundleKey.idle), architecture: architecture) { bad(BundleKey.idle, $0) }

        var preprocessing: Preprocessing?
        if let text = metadata[BundleKey.preprocessing] {
            guard let json = try? JSONParser.parse(text) else { throw bad(BundleKey.preprocessing, "is not valid JSON") }
            do { preprocessing = try Preprocessing.decode(json, source: "bundle") } catch { throw bad(BundleKey.preprocessing, error.description) }
        }

        let graphText = value(BundleKey.graph)
        let graph: Graph
        do {
            graph = try GraphJSON.decode(try JSONParser.parse(graphText))
        } catch let error as JSONError {
            throw bad(BundleKey.graph, "is not valid JSON: \(error)")
        } catch {
            throw bad(BundleKey.graph, "is not a valid IR graph: \(String(describing: error).escapedForMessage)")
        }
        guard graph.architecture == architecture else { throw bad(BundleKey.graph, "describes another architecture than metadata 'architecture'") }
        for constant in graph.constants {
            guard let shape = tensors[constant.name] else { throw bad(BundleKey.graph, "names constant '\(constant.name.escapedForMessage)', which is not a tensor of the file") }
            guard shape == constant.shape else {
                throw bad(BundleKey.graph, "gives constant '\(constant.name.escapedForMessage)' shape \(describeShape(constant.shape)), the tensor has \(describeShape(shape))")
            }
        }
        let constantNames = Set(graph.constants.map(\.name))
        if let unused = file.entries.map(\.name).sorted().first(where: { !constantNames.contains($0) }) {
            throw bad(BundleKey.graph, "has no constant for tensor '\(unused.escapedForMessage)'")
        }
        try checkSelections(graph, schedule: schedule, architecture: architecture) { bad(BundleKey.graph, $0) }

        return BundleInfo(formatVersion: version, dtype: dtype, producer: producer, source: source, architecture: architecture,
                          schedule: schedule, preprocessing: preprocessing, graph: graph, graphText: graphText)
    }

    /// The stored graph, checked against the model the weights describe (`dense`, built by the
    /// loader from the recognised weights: the description's graph), with the weights
    /// attached: the graph to run. A bundle whose graph computes something its weights and
    /// schedule do not is refused rather than half-trusted.
    public static func resolve(_ info: BundleInfo, file: String, recognized: ModelArchitecture, dense: Graph) throws(ImportError) -> Graph {
        func bad(_ key: String, _ rule: String) -> ImportError { badMetadata(displayName(file), key, rule) }
        guard recognized == info.architecture else {
            throw bad(BundleKey.architecture, "says \(info.architecture) but the tensors read as \(recognized)")
        }
        let idle: [Int: TokenSelect]
        do { idle = try GraphConformance.idleLayers(of: info.graph, dense: dense) } catch {
            throw bad(BundleKey.graph, "is not the model its tensors describe: \(error.message)")
        }
        let scheduled = Set(info.schedule?.effective.idleLayers ?? [])
        guard Set(idle.keys) == scheduled else {
            throw bad(BundleKey.graph, "has idle blocks at layers \(idle.keys.sorted()), metadata 'idle' at \(scheduled.sorted())")
        }
        var graph = info.graph
        do {
            try graph.attachWeights { dense.constant(named: $0)?.tensor }
            try GraphValidator.validate(graph)
        } catch {
            throw bad(BundleKey.graph, "does not fit the tensors: \(error)")
        }
        return graph
    }

    /// Opens, validates and recognises a bundle on its own (tests, tools).
    public static func open(path: String) throws(ImportError) -> (info: BundleInfo, recognized: RecognizedModel, graph: Graph) {
        let file = try SafetensorsFile(path: path)
        let info = try readMetadata(file)
        let recognized = try ModelDescription.recognize(try file.weightSet(format: .bundle))
        let dense: Graph
        do { dense = try ModelDescription.buildGraph(recognized) } catch {
            throw .architecture(file: displayName(path), problems: ["cannot build the graph: \(error)"])
        }
        let graph = try resolve(info, file: path, recognized: recognized.architecture, dense: dense)
        return (info, recognized, graph)
    }

    /// `format_version` and other metadata integers: ASCII digits only, no sign, no leading
    /// zero, at most 9 digits (`Int("+1")` is 1; a bundle's "+1" is not).
    static func strictPositiveInteger(_ text: String) -> Int? {
        let bytes = Array(text.utf8)
        guard (1...9).contains(bytes.count), bytes[0] != UInt8(ascii: "0"),
              bytes.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
        return Int(text)
    }

    // MARK: pieces

    static func decodeArchitecture(_ text: String, _ bad: (String) -> ImportError) throws(ImportError) -> ModelArchitecture {
        guard let json = try? JSONParser.parse(text) else { throw bad("is not valid JSON") }
        do {
            return try GraphJSON.decodeArchitecture(json)
        } catch {
            throw bad("is not a model architecture: \(error)")
        }
    }

    /// `idle`: `kept` has one entry per layer (null or 0...Np), `layers` lists the non-null
    /// ones, `keep_ratios` are kept / Np, `patch_count` is the model's Np, and `base_rate` is
    /// null or in (0, 1]. Returns nil for a dense bundle (every entry null).
    static func decodeIdle(_ text: String, architecture a: ModelArchitecture, _ bad: (String) -> ImportError) throws(ImportError) -> IdleSchedule? {
        guard let json = try? JSONParser.parse(text), json.objectPairs != nil else { throw bad("is not a JSON object") }
        guard let kept = json["kept"]?.arrayValue else { throw bad("needs an array 'kept' with one entry per layer") }
        guard kept.count == a.depth else { throw bad("lists \(kept.count) kept counts for a model of depth \(a.depth)") }
        guard json["patch_count"]?.intValue == a.patchCount else {
            throw bad("'patch_count' must be \(a.patchCount), the model's image patches")
        }
        var counts: [Int?] = []
        for (layer, entry) in kept.enumerated() {
            if entry == .null { counts.append(nil); continue }
            guard entry.isIntegerLiteral, let k = entry.intValue, (0...a.patchCount).contains(k) else {
                throw bad("keeps \(JSONWriter.write(entry)) tokens at layer \(layer), outside 0...\(a.patchCount)")
            }
            counts.append(k)
        }
        let idleLayers = counts.indices.filter { counts[$0] != nil }
        guard json["layers"]?.arrayValue?.map(\.intValue) == idleLayers.map(Optional.some) else {
            throw bad("'layers' must list the layers with a kept count, \(JSONWriter.write(.array(idleLayers.map(JSONValue.int))))")
        }
        guard let ratios = json["keep_ratios"]?.arrayValue, ratios.count == a.depth else {
            throw bad("needs 'keep_ratios' with one entry per layer (\(a.depth))")
        }
        for (layer, ratio) in ratios.enumerated() {
            let expected = counts[layer].map { Double($0) / Double(a.patchCount) }
            guard ratio == .null ? expected == nil : ratio.doubleValue == expected else {
                throw bad("'keep_ratios' entry \(layer) is \(JSONWriter.write(ratio)), not kept / patch_count")
            }
        }
        var rate: Double?
        switch json["base_rate"] {
        case .null?: rate = nil
        case let value? where value.doubleValue.map({ $0 > 0 && $0 <= 1 }) == true: rate = value.doubleValue
        default: throw bad("'base_rate' must be null or a number in (0, 1]")
        }
        guard !idleLayers.isEmpty else {
            guard rate == nil else { throw bad("gives a 'base_rate' but no idle layers") }
            return nil
        }
        return IdleSchedule(kept: counts, patchCount: a.patchCount, keepRatio: rate)
    }

    /// Each layer the schedule makes idle has one `token_select` keeping its K tokens after
    /// the prefix; no other layer selects.
    static func checkSelections(_ graph: Graph, schedule: IdleSchedule?, architecture a: ModelArchitecture,
                                _ bad: (String) -> ImportError) throws(ImportError) {
        let effective = schedule?.effective.kept ?? Array(repeating: nil, count: a.depth)
        var seen = Set<Int>()
        for node in graph.nodes {
            guard case .tokenSelect(let selection) = node.op else { continue }
            guard case .blockPart(let layer, .selected)? = ActivationName(node.name), (0..<a.depth).contains(layer) else {
                throw bad("has token_select node '\(node.name.escapedForMessage)' outside any block")
            }
            guard let k = effective[layer] else { throw bad("selects tokens at layer \(layer), which metadata 'idle' leaves dense") }
            guard selection.keep == k else {
                throw bad("node '\(node.name.escapedForMessage)' keeps \(selection.keep) tokens, metadata 'idle' says \(k)")
            }
            guard selection.prefix == a.prefixTokens else { throw bad("node '\(node.name.escapedForMessage)' has the wrong prefix token count") }
            seen.insert(layer)
        }
        for (layer, k) in effective.enumerated() where k != nil && !seen.contains(layer) {
            throw bad("has no token_select at layer \(layer), which metadata 'idle' makes idle (keeps \(k!))")
        }
    }
}
