/// The JSON form of a graph, validated by `Schemas/ir.schema.json`. Weights are referred to by
/// name and shape only; a bundle carries their bytes beside the graph.
public enum GraphJSON {
    public static let formatName = "idlevit-ir"
    public static let version = 1

    public static func encode(_ graph: Graph) -> JSONValue {
        var pairs: [(key: String, value: JSONValue)] = [
            ("format", .string(formatName)),
            ("version", .int(version)),
        ]
        if let architecture = graph.architecture { pairs.append(("architecture", encode(architecture))) }
        pairs.append(("metadata", .object(graph.metadata.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
        pairs.append(("inputs", .array(graph.inputs.map { .object([("name", .string($0.name)), ("type", encode($0.type))]) })))
        pairs.append(("constants", .array(graph.constants.map {
            .object([("name", .string($0.name)), ("shape", .array($0.shape.map(JSONValue.int))),
                     ("source_dtype", .string($0.sourceType.rawValue))])
        })))
        pairs.append(("nodes", .array(graph.nodes.map(encode))))
        pairs.append(("outputs", .array(graph.outputs.map(JSONValue.string))))
        return .object(pairs)
    }

    /// The LV-ViT keys are written for that family only, so a ViT's architecture reads exactly
    /// as before they existed.
    public static func encode(_ architecture: ModelArchitecture) -> JSONValue {
        var pairs: [(key: String, value: JSONValue)] = [
            ("family", .string(architecture.family.rawValue)),
            ("image_size", .int(architecture.imageSize)),
            ("patch_size", .int(architecture.patchSize)),
            ("in_channels", .int(architecture.inChannels)),
            ("embed_dim", .int(architecture.embedDim)),
            ("depth", .int(architecture.depth)),
            ("num_heads", .int(architecture.heads)),
            ("mlp_hidden", .int(architecture.mlpHidden)),
            ("num_classes", .int(architecture.classes)),
            ("distilled", .bool(architecture.distilled)),
            ("layer_norm_eps", .double(architecture.layerNormEps)),
            ("qkv_bias", .bool(architecture.qkvBias)),
            ("layer_scale", .bool(architecture.layerScale)),
            ("prefix_positions", .bool(architecture.prefixPositions)),
        ]
        if architecture.family == .lvvit {
            pairs += [
                ("stem_channels", .int(architecture.stemChannels)),
                ("stem_batch_norm", .bool(architecture.stemBatchNorm)),
                ("skip_lam", .double(architecture.skipLam)),
                ("aux_head", .bool(architecture.auxHead)),
            ]
        }
        return .object(pairs)
    }

    static func encode(_ type: ValueType) -> JSONValue {
        .object([
            ("dtype", .string(type.elementType.rawValue)),
            ("shape", .array(type.shape.map { dim in
                switch dim {
                case .batch: return .string("B")
                case .fixed(let n): return .int(n)
                }
            })),
        ])
    }

    static func encode(_ node: Node) -> JSONValue {
        let attributes: [(key: String, value: JSONValue)] = node.op.attributeList.map { entry in
            switch entry.value {
            case .int(let v): return (entry.key, .int(v))
            case .float(let v): return (entry.key, .double(v))
            case .ints(let v): return (entry.key, .array(v.map(JSONValue.int)))
            }
        }
        return .object([
            ("name", .string(node.name)),
            ("op", .string(node.kind.rawValue)),
            ("inputs", .array(node.inputs.map(JSONValue.string))),
            ("attributes", .object(attributes)),
            ("type", encode(node.type)),
        ])
    }

    // MARK: decoding

    /// Reads a graph back. Constants come back without tensors; `attachWeights` (or a bundle
    /// reader) supplies them. The result is validated structurally (weights not required).
    public static func decode(_ json: JSONValue) throws(GraphError) -> Graph {
        func fail(_ message: String) -> GraphError { .malformedJSON(message) }
        guard json["format"]?.stringValue == formatName else { throw fail("'format' is not \"\(formatName)\"") }
        guard json["version"]?.intValue == version else { throw fail("unsupported 'version' (expected \(version))") }
        var architecture: ModelArchitecture?
        if let value = json["architecture"] { architecture = try decodeArchitecture(value) }
        var metadata: [String: String] = [:]
        for pair in json["metadata"]?.objectPairs ?? [] {
            guard let text = pair.value.stringValue else { throw fail("metadata '\(pair.key)' is not a string") }
            metadata[pair.key] = text
        }
        guard let inputValues = json["inputs"]?.arrayValue, let constantValues = json["constants"]?.arrayValue,
              let nodeValues = json["nodes"]?.arrayValue, let outputValues = json["outputs"]?.arrayValue else {
            throw fail("needs arrays 'inputs', 'constants', 'nodes' and 'outputs'")
        }
        var inputs: [GraphInput] = []
        for value in inputValues {
            guard let name = value["name"]?.stringValue, let type = value["type"] else { throw fail("an input needs 'name' and 'type'") }
            inputs.append(GraphInput(name: name, type: try decodeType(type, context: "input '\(name)'")))
        }
        var constants: [Constant] = []
        for value in constantValues {
            guard let name = value["name"]?.stringValue, let dims = value["shape"]?.arrayValue else { throw fail("a constant needs 'name' and 'shape'") }
            let shape = dims.compactMap(\.intValue)
            guard shape.count == dims.count, shape.allSatisfy({ $0 >= 0 }) else { throw fail("constant '\(name)' has a bad shape") }
            let source = value["source_dtype"]?.stringValue.flatMap(ElementType.init(rawValue:)) ?? .f32
            constants.append(Constant(name: name, shape: shape, sourceType: source, tensor: nil))
        }
        var nodes: [Node] = []
        for value in nodeValues {
            guard let name = value["name"]?.stringValue, let opName = value["op"]?.stringValue,
                  let inputNames = value["inputs"]?.arrayValue, let type = value["type"] else {
                throw fail("a node needs 'name', 'op', 'inputs' and 'type'")
            }
            guard let kind = OpKind(rawValue: opName) else { throw fail("node '\(name)' has unknown op '\(opName)'") }
            let names = inputNames.compactMap(\.stringValue)
            guard names.count == inputNames.count else { throw fail("node '\(name)' has a non-string input") }
            var attributes: [(key: String, value: AttributeValue)] = []
            for pair in value["attributes"]?.objectPairs ?? [] {
                attributes.append((pair.key, try decodeAttribute(pair.value, context: "node '\(name)' attribute '\(pair.key)'")))
            }
            let op: Op
            do { op = try Op.decode(kind: kind, attributes: attributes) } catch { throw .inNode(node: name, GraphErrorBox(error)) }
            nodes.append(Node(name, op, names, type: try decodeType(type, context: "node '\(name)'")))
        }
        let outputs = outputValues.compactMap(\.stringValue)
        guard outputs.count == outputValues.count else { throw fail("'outputs' holds a non-string") }
        let graph = Graph(inputs: inputs, constants: constants, nodes: nodes, outputs: outputs,
                          architecture: architecture, metadata: metadata)
        try GraphValidator.validate(graph, requireWeights: false)
        return graph
    }

    /// Reads an architecture strictly: integers must be integer literals within `Limits`, the
    /// geometry consistent (`ModelArchitecture.validate`). The keys bundles of the first
    /// release lack (`family`, `qkv_bias`, `layer_scale`, `prefix_positions`) default to a
    /// DeiT's values; the LV-ViT keys (`stem_channels`, `stem_batch_norm`, `skip_lam`,
    /// `aux_head`) default to a ViT's (no stem, skip_lam 1, no auxiliary head); unknown keys are
    /// refused.
    public static func decodeArchitecture(_ value: JSONValue) throws(GraphError) -> ModelArchitecture {
        guard let pairs = value.objectPairs else { throw .malformedJSON("architecture must be an object") }
        let known: Set<String> = ["family", "image_size", "patch_size", "in_channels", "embed_dim", "depth", "num_heads", "mlp_hidden",
                                  "num_classes", "distilled", "layer_norm_eps", "qkv_bias", "layer_scale", "prefix_positions",
                                  "stem_channels", "stem_batch_norm", "skip_lam", "aux_head"]
        if let unknown = pairs.first(where: { !known.contains($0.key) }) {
            throw .malformedJSON("architecture has an unknown key '\(unknown.key.escapedForMessage)'")
        }
        func int(_ key: String) throws(GraphError) -> Int {
            guard let entry = value[key], entry.isIntegerLiteral, let v = entry.intValue, v > 0 else {
                throw .malformedJSON("architecture '\(key)' must be a positive integer")
            }
            return v
        }
        func bool(_ key: String, default fallback: Bool? = nil) throws(GraphError) -> Bool {
            guard let entry = value[key] else {
                if let fallback { return fallback }
                throw .malformedJSON("architecture '\(key)' must be a boolean")
            }
            guard let v = entry.boolValue else { throw .malformedJSON("architecture '\(key)' must be a boolean") }
            return v
        }
        var family = ModelFamily.vit
        if let name = value["family"] {
            guard let text = name.stringValue, let known = ModelFamily(rawValue: text) else {
                throw .malformedJSON("architecture 'family' must be one of \(ModelFamily.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            family = known
        }
        guard let eps = value["layer_norm_eps"]?.doubleValue else { throw .malformedJSON("architecture 'layer_norm_eps' must be a number") }
        var stemChannels = 0
        if value["stem_channels"] != nil { stemChannels = try int("stem_channels") }
        var skipLam = 1.0
        if let entry = value["skip_lam"] {
            guard let v = entry.doubleValue else { throw .malformedJSON("architecture 'skip_lam' must be a number") }
            skipLam = v
        }
        let architecture = ModelArchitecture(
            family: family, imageSize: try int("image_size"), patchSize: try int("patch_size"), inChannels: try int("in_channels"),
            embedDim: try int("embed_dim"), depth: try int("depth"), heads: try int("num_heads"), mlpHidden: try int("mlp_hidden"),
            classes: try int("num_classes"), distilled: try bool("distilled"), layerNormEps: eps,
            qkvBias: try bool("qkv_bias", default: true), layerScale: try bool("layer_scale", default: false),
            prefixPositions: try bool("prefix_positions", default: true), stemChannels: stemChannels,
            stemBatchNorm: try bool("stem_batch_norm", default: false), skipLam: skipLam, auxHead: try bool("aux_head", default: false))
        do { try architecture.validate() } catch { throw .malformedJSON("architecture: \(error)") }
        return architecture
    }

    static func decodeType(_ value: JSONValue, context: String) throws(GraphError) -> ValueType {
        guard let dtypeName = value["dtype"]?.stringValue, let dtype = ElementType(rawValue: dtypeName),
              let dims = value["shape"]?.arrayValue else {
            throw .malformedJSON("\(context): type needs a known 'dtype' and a 'shape'")
        }
        var shape: [Dim] = []
        for dim in dims {
            if dim.stringValue == "B" {
                shape.append(.batch)
            } else if let n = dim.intValue, n >= 0 {
                shape.append(.fixed(n))
            } else {
                throw .malformedJSON("\(context): shape entries are \"B\" or non-negative integers")
            }
        }
        return ValueType(dtype, shape)
    }

    static func decodeAttribute(_ value: JSONValue, context: String) throws(GraphError) -> AttributeValue {
        switch value {
        case .number:
            if value.isIntegerLiteral, let v = value.intValue { return .int(v) }
            if let v = value.doubleValue { return .float(v) }
        case .array(let items):
            let ints = items.compactMap { $0.isIntegerLiteral ? $0.intValue : nil }
            if ints.count == items.count { return .ints(ints) }
        default: break
        }
        throw .malformedJSON("\(context) must be a number or an array of integers")
    }
}

extension Graph {
    /// Fills in constant tensors by name, checking each shape.
    public mutating func attachWeights(_ lookup: (String) -> FloatTensor?) throws(GraphError) {
        for constant in constants {
            guard let tensor = lookup(constant.name), tensor.shape == constant.shape else { throw .missingWeights(constant.name) }
            var filled = constant
            filled.tensor = tensor
            addConstant(filled)
        }
    }
}
