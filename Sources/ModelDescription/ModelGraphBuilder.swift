import IR

/// How a family scales a block's two residual branches before adding them to the stream.
enum ResidualScaling {
    case none
    /// DeiT-III's LayerScale: `ls1.gamma * branch` and `ls2.gamma * branch` (`scale` nodes named
    /// `layerScale1` / `layerScale2`).
    case layerScale
    /// LV-ViT's `branch / skip_lam` (the `divide` op given, nodes named `attentionScaled` /
    /// `mlpScaled`).
    case divide(Op)
}

/// `GraphBuilder` speaking the model description's vocabulary: values by `ActivationName`,
/// weights by `TensorRole`; the pieces every family's builder shares (the input, the
/// transformer block, the finished graph).
struct ModelGraphBuilder {
    /// Every family's linear layers: a full product, bias when the layer has one.
    static let linear = Op.linear(.full)

    var inner: GraphBuilder
    var graph: Graph { inner.graph }

    /// A graph of the model's weights as constants and one input, `pixel_values` [batch, C, S, S].
    init(_ model: RecognizedModel) {
        let a = model.architecture
        let constants = model.weights.weights.map { Constant(name: $0.name, tensor: $0.tensor, sourceType: $0.sourceType) }
        let input = GraphInput(name: ActivationName.pixelValues.name,
                               type: ValueType(.f32, [.batch, .fixed(a.inChannels), .fixed(a.imageSize), .fixed(a.imageSize)]))
        inner = GraphBuilder(Graph(inputs: [input], constants: constants, architecture: a))
    }

    @discardableResult
    mutating func add(_ name: ActivationName, _ op: Op, _ inputs: [String]) throws(GraphError) -> String {
        try inner.add(name.name, op, inputs)
    }

    func weight(_ role: TensorRole, block: Int = 0) -> String { role.name(block: block) }

    /// Block `i` on the stream `x`, the pattern `DenseBlock` matches:
    ///
    ///     r = x + s1(proj(attn(qkv(norm1 x)))),  blocks.{i} = r + s2(fc2(gelu(fc1(norm2 r))))
    ///
    /// with s1, s2 the family's `scaling`. Returns `blocks.{i}`.
    mutating func addBlock(_ i: Int, input x: String, norm: Op, attention: Op, qkvBias: Bool,
                           scaling: ResidualScaling) throws(GraphError) -> String {
        func part(_ p: BlockPart) -> ActivationName { .blockPart(i, p) }
        func w(_ role: TensorRole) -> String { weight(role, block: i) }
        func scaled(_ branch: String, layerScale: (BlockPart, TensorRole), divided: BlockPart) throws(GraphError) -> String {
            switch scaling {
            case .none: return branch
            case .layerScale: return try add(part(layerScale.0), .scale, [branch, w(layerScale.1)])
            case .divide(let op): return try add(part(divided), op, [branch])
            }
        }
        let linear = ModelGraphBuilder.linear
        let norm1 = try add(part(.norm1), norm, [x, w(.norm1Weight), w(.norm1Bias)])
        let qkv = try add(part(.qkv), linear, [norm1, w(.qkvWeight)] + (qkvBias ? [w(.qkvBias)] : []))
        let mixed = try add(part(.attention), attention, [qkv])
        var branch = try add(part(.proj), linear, [mixed, w(.projWeight), w(.projBias)])
        branch = try scaled(branch, layerScale: (.layerScale1, .layerScale1), divided: .attentionScaled)
        let residual = try add(part(.attentionResidual), .add, [x, branch])
        let norm2 = try add(part(.norm2), norm, [residual, w(.norm2Weight), w(.norm2Bias)])
        let fc1 = try add(part(.fc1), linear, [norm2, w(.fc1Weight), w(.fc1Bias)])
        let act = try add(part(.activation), .gelu, [fc1])
        branch = try add(part(.fc2), linear, [act, w(.fc2Weight), w(.fc2Bias)])
        branch = try scaled(branch, layerScale: (.layerScale2, .layerScale2), divided: .mlpScaled)
        return try add(.block(i), .add, [residual, branch])
    }

    /// The graph with `logits` as its output and the naming scheme recorded, validated.
    func finish(naming scheme: String) throws(GraphError) -> Graph {
        var graph = graph
        graph.outputs = [ActivationName.logits.name]
        graph.metadata["naming"] = scheme
        try GraphValidator.validate(graph)
        return graph
    }
}
