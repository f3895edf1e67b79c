import IR
import Importers
import Passes

/// What a validated bundle says about itself.
public struct BundleInfo: Sendable {
    public var formatVersion: Int
    public var dtype: ElementType
    public var producer: String
    public var source: BundleSource
    public var architecture: DeiTArchitecture
    /// nil for a dense bundle.
    public var schedule: IdleSchedule?
    /// The stored graph, without weights.
    public var graph: Graph
    public var graphText: String

    /// Lines for `inspect`: bundle facts, provenance, schedule.
    public var details: [(String, String)] {
        var lines: [(String, String)] = [
            ("bundle", "format \(formatVersion), \(dtype.safetensorsName) tensors, written by \(producer)"),
            ("source", "\(source.file) (\(source.format)), sha256 \(source.sha256)"),
        ]
        if let schedule {
            let ratio = schedule.keepRatio.map { "r = \(formatDouble($0)); " } ?? ""
            let kept = schedule.kept.enumerated().compactMap { entry in entry.element.map { "\(entry.offset):\($0)" } }
            lines.append(("idle", ratio + "kept image tokens per layer " + kept.joined(separator: " ")))
        } else {
            lines.append(("idle", "none (dense bundle)"))
        }
        lines.append(("stored graph", "\(graph.nodes.count) nodes, equal to the graph rebuilt from the tensors"))
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
/// graph's `token_select` nodes); `checkRebuilt` compares the stored graph with the one
/// rebuilt from the recognised weights and the stored schedule.
public enum BundleReader {
    /// The one shape of every metadata complaint: file, format, key, what is wrong.
    static func badMetadata(_ file: String, _ key: String, _ rule: String) -> ImportError {
        .invalidFile(file: file, format: BundleFormat.displayName, rule: "metadata '\(key)' \(rule)")
    }

    public static func readMetadata(_ file: SafetensorsFile) throws(ImportError) -> BundleInfo {
        let name = displayName(file.path)
        func bad(_ key: String, _ rule: String) -> ImportError { badMetadata(name, key, rule) }
        let metadata = file.metadata
        for key in BundleKey.all where metadata[key] == nil { throw bad(key, "is missing") }
        let value = { (key: String) in metadata[key]! }

        guard value(BundleKey.format) == BundleFormat.name else { throw bad(BundleKey.format, "is '\(value(BundleKey.format))', not '\(BundleFormat.name)'") }
        guard let version = Int(value(BundleKey.formatVersion)), version >= 1 else {
            throw bad(BundleKey.formatVersion, "is '\(value(BundleKey.formatVersion))', not a positive integer")
        }
        guard version == BundleFormat.version else {
            throw bad(BundleKey.formatVersion, "is \(version); this idlevit reads version \(BundleFormat.version)")
        }
        let producer = value(BundleKey.producer)
        guard producer.hasPrefix("idlevit ") else { throw bad(BundleKey.producer, "is '\(producer)', not 'idlevit <version>'") }

        guard let dtype = ElementType(rawValue: value(BundleKey.dtype)), [.f32, .f16, .bf16].contains(dtype) else {
            throw bad(BundleKey.dtype, "is '\(value(BundleKey.dtype))', not one of f32, f16, bf16")
        }
        for entry in file.entries where entry.dtype.floatSource != dtype {
            throw bad(BundleKey.dtype, "says \(dtype.rawValue) but tensor '\(entry.name)' is stored as \(entry.dtype.rawValue)")
        }

        let source: BundleSource
        switch BundleSource.decode(value(BundleKey.source)) {
        case .success(let decoded): source = decoded
        case .failure(let problem): throw bad(BundleKey.source, problem.message)
        }

        let architecture = try decodeArchitecture(value(BundleKey.architecture)) { bad(BundleKey.architecture, $0) }
        let tensors = Dictionary(file.entries.map { ($0.name, $0.shape) }, uniquingKeysWith: { first, _ in first })
        let expected = DeiTRecognizer.expectedTensors(architecture)
        for (tensor, shape) in expected {
            guard let found = tensors[tensor] else { throw bad(BundleKey.architecture, "needs tensor '\(tensor)' \(describeShape(shape)), which the file lacks") }
            guard found == shape else {
                throw bad(BundleKey.architecture, "needs tensor '\(tensor)' of shape \(describeShape(shape)), the file has \(describeShape(found))")
            }
        }
        let expectedNames = Set(expected.map(\.name))
        if let extra = file.entries.map(\.name).sorted().first(where: { !expectedNames.contains($0) }) {
            throw bad(BundleKey.architecture, "has no place for tensor '\(extra)'")
        }

        let schedule = try decodeIdle(value(BundleKey.idle), architecture: architecture) { bad(BundleKey.idle, $0) }

        let graphText = value(BundleKey.graph)
        let graph: Graph
        do {
            graph = try GraphJSON.decode(try JSONParser.parse(graphText))
        } catch let error as JSONError {
            throw bad(BundleKey.graph, "is not valid JSON: \(error)")
        } catch {
            throw bad(BundleKey.graph, "is not a valid IR graph: \(error)")
        }
        guard graph.architecture == architecture else { throw bad(BundleKey.graph, "describes another architecture than metadata 'architecture'") }
        for constant in graph.constants {
            guard let shape = tensors[constant.name] else { throw bad(BundleKey.graph, "names constant '\(constant.name)', which is not a tensor of the file") }
            guard shape == constant.shape else {
                throw bad(BundleKey.graph, "gives constant '\(constant.name)' shape \(describeShape(constant.shape)), the tensor has \(describeShape(shape))")
            }
        }
        let constantNames = Set(graph.constants.map(\.name))
        if let unused = file.entries.map(\.name).sorted().first(where: { !constantNames.contains($0) }) {
            throw bad(BundleKey.graph, "has no constant for tensor '\(unused)'")
        }
        try checkSelections(graph, schedule: schedule, architecture: architecture) { bad(BundleKey.graph, $0) }

        return BundleInfo(formatVersion: version, dtype: dtype, producer: producer, source: source, architecture: architecture,
                          schedule: schedule, graph: graph, graphText: graphText)
    }

    /// The stored graph must be exactly the one rebuilt from the tensors (`dense`, built by the
    /// loader from the recognised weights) and the stored schedule: a bundle whose graph says
    /// something its weights and schedule do not is refused rather than half-trusted. Returns
    /// the rebuilt graph (equal to the stored one) for callers that go on to run it.
    @discardableResult
    public static func checkRebuilt(_ info: BundleInfo, file: String, recognized: DeiTArchitecture, dense: Graph) throws(ImportError) -> Graph {
        func bad(_ key: String, _ rule: String) -> ImportError { badMetadata(displayName(file), key, rule) }
        guard recognized == info.architecture else {
            throw bad(BundleKey.architecture, "says \(info.architecture) but the tensors read as \(recognized)")
        }
        let rebuilt: Graph
        do {
            rebuilt = try BundleGraph.canonical(dense: dense, schedule: info.schedule)
        } catch {
            throw bad(BundleKey.idle, "cannot be applied: \(error.message)")
        }
        guard BundleGraph.text(rebuilt) != info.graphText else { return rebuilt }
        throw bad(BundleKey.graph, "differs from the graph rebuilt from the tensors and schedule: " + firstDifference(info.graph, rebuilt))
    }

    /// Opens, validates and recognises a bundle on its own (tests, tools).
    public static func open(path: String) throws(ImportError) -> (info: BundleInfo, recognized: RecognizedDeiT, graph: Graph) {
        let file = try SafetensorsFile(path: path)
        let info = try readMetadata(file)
        let recognized = try DeiTRecognizer.recognize(try file.weightSet(format: .bundle))
        let dense: Graph
        do { dense = try DeiTGraphBuilder.build(recognized) } catch {
            throw .architecture(file: displayName(path), problems: ["cannot build the graph: \(error)"])
        }
        let graph = try checkRebuilt(info, file: path, recognized: recognized.architecture, dense: dense)
        return (info, recognized, graph)
    }

    // MARK: pieces

    static func decodeArchitecture(_ text: String, _ bad: (String) -> ImportError) throws(ImportError) -> DeiTArchitecture {
        guard let json = try? JSONParser.parse(text) else { throw bad("is not valid JSON") }
        do {
            return try GraphJSON.decodeArchitecture(json)
        } catch {
            throw bad("is not a DeiT architecture: \(error)")
        }
    }

    /// `idle`: `kept` has one entry per layer (null or 0...Np), `layers` lists the non-null
    /// ones, `keep_ratios` are kept / Np, `patch_count` is the model's Np, and `base_rate` is
    /// null or in (0, 1]. Returns nil for a dense bundle (every entry null).
    static func decodeIdle(_ text: String, architecture a: DeiTArchitecture, _ bad: (String) -> ImportError) throws(ImportError) -> IdleSchedule? {
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
    static func checkSelections(_ graph: Graph, schedule: IdleSchedule?, architecture a: DeiTArchitecture,
                                _ bad: (String) -> ImportError) throws(ImportError) {
        let effective = schedule?.effective.kept ?? Array(repeating: nil, count: a.depth)
        var seen = Set<Int>()
        for node in graph.nodes {
            guard case .tokenSelect(let selection) = node.op else { continue }
            guard node.name.hasPrefix("blocks."), node.name.hasSuffix(".selected"),
                  let layer = Int(node.name.dropFirst("blocks.".count).dropLast(".selected".count)),
                  (0..<a.depth).contains(layer) else {
                throw bad("has token_select node '\(node.name)' outside any block")
            }
            guard let k = effective[layer] else { throw bad("selects tokens at layer \(layer), which metadata 'idle' leaves dense") }
            guard selection.keep == k else {
                throw bad("node '\(node.name)' keeps \(selection.keep) tokens, metadata 'idle' says \(k)")
            }
            guard selection.prefix == a.prefixTokens else { throw bad("node '\(node.name)' has the wrong prefix token count") }
            seen.insert(layer)
        }
        for (layer, k) in effective.enumerated() where k != nil && !seen.contains(layer) {
            throw bad("has no token_select at layer \(layer), which metadata 'idle' makes idle (keeps \(k!))")
        }
    }

    /// Where two graphs first disagree, for the message.
    static func firstDifference(_ stored: Graph, _ rebuilt: Graph) -> String {
        for (s, r) in zip(stored.nodes, rebuilt.nodes) where s != r {
            return "node '\(s.name)' (\(s.kind.rawValue)) where the rebuilt graph has '\(r.name)' (\(r.kind.rawValue))"
                + (s.name == r.name && s.kind == r.kind ? " with other inputs, attributes or type" : "")
        }
        if stored.nodes.count != rebuilt.nodes.count {
            return "\(stored.nodes.count) nodes where the rebuilt graph has \(rebuilt.nodes.count)"
        }
        for (s, r) in zip(stored.constants, rebuilt.constants) where s.name != r.name || s.sourceType != r.sourceType {
            return "constant '\(s.name)' (\(s.sourceType.rawValue)) where the rebuilt graph has '\(r.name)' (\(r.sourceType.rawValue))"
        }
        if stored.metadata != rebuilt.metadata { return "graph metadata differs" }
        return "inputs, outputs or constant order differ"
    }
}
