import IR

/// One dense pre-norm block as the graph builders emit it, found by dataflow (the residual
/// adds must read the block input and the right branch outputs), not by names alone:
///
///     norm1 -> qkv -> attention -> proj [-> ls1] -> add(x, .) -> norm2 -> fc1 -> gelu -> fc2
///       [-> ls2] -> add(attn_residual, .) = blocks.{i}
///
/// Each residual branch may end in one scaling node: DeiT-III's LayerScale (`scale` by a
/// gamma) or LV-ViT's skip_lam (`divide`), the same kind on both branches. The fields keep the
/// LayerScale names (`layerScale1`, `layerScale2`) for either.
///
/// This is the pattern the IdleViT rewrite replaces (`IdleBlock.emit`).
public struct DenseBlock: Sendable {
    public let index: Int
    /// The block's input value (the residual stream).
    public let input: String
    public let norm1: Node
    public let qkv: Node
    public let attention: Node
    public let proj: Node
    public let layerScale1: Node?
    public let attentionResidual: Node
    public let norm2: Node
    public let fc1: Node
    public let activation: Node
    public let fc2: Node
    public let layerScale2: Node?
    public let output: Node
    /// Nodes the block spans in the graph.
    public let length: Int

    /// The ops a residual branch may end in: LayerScale and skip_lam.
    static let branchScales: Set<OpKind> = [.scale, .divide]

    public var heads: Int {
        if case .attention(let a) = attention.op { return a.heads }
        return 1
    }

    /// The dense block starting at `position`, if one does.
    public init?(nodes: [Node], at position: Int) {
        var cursor = position
        func next(_ kind: OpKind) -> Node? {
            guard cursor < nodes.count, nodes[cursor].kind == kind else { return nil }
            defer { cursor += 1 }
            return nodes[cursor]
        }
        func optional(_ kinds: Set<OpKind>, reading value: String) -> Node? {
            guard cursor < nodes.count, kinds.contains(nodes[cursor].kind), nodes[cursor].inputs.first == value else { return nil }
            defer { cursor += 1 }
            return nodes[cursor]
        }
        guard let norm1 = next(.layerNorm), let qkv = next(.linear), let attention = next(.attention), let proj = next(.linear) else { return nil }
        let ls1 = optional(DenseBlock.branchScales, reading: proj.name)
        guard let residual = next(.add), let norm2 = next(.layerNorm), let fc1 = next(.linear), let act = next(.gelu),
              let fc2 = next(.linear) else { return nil }
        let ls2 = optional(DenseBlock.branchScales, reading: fc2.name)
        guard let output = next(.add) else { return nil }
        let x = norm1.inputs[0]
        guard case .linear(let qkvLinear) = qkv.op, qkvLinear.rows == nil, qkv.inputs[0] == norm1.name,
              attention.inputs == [qkv.name], proj.inputs[0] == attention.name,
              residual.inputs == [x, (ls1 ?? proj).name], norm2.inputs[0] == residual.name, fc1.inputs[0] == norm2.name,
              act.inputs == [fc1.name], fc2.inputs[0] == act.name, output.inputs == [residual.name, (ls2 ?? fc2).name],
              ls1?.kind == ls2?.kind,
              case .block(let index)? = ActivationName(output.name) else { return nil }
        self.index = index
        self.input = x
        (self.norm1, self.qkv, self.attention, self.proj, self.layerScale1) = (norm1, qkv, attention, proj, ls1)
        (self.attentionResidual, self.norm2, self.fc1, self.activation, self.fc2, self.layerScale2, self.output) =
            (residual, norm2, fc1, act, fc2, ls2, output)
        self.length = cursor - position
    }

    /// The block's nodes in graph order.
    public var nodes: [Node] {
        [norm1, qkv, attention, proj] + [layerScale1].compactMap { $0 } + [attentionResidual, norm2, fc1, activation, fc2]
            + [layerScale2].compactMap { $0 } + [output]
    }
}

/// The idle-aware block of IDLEVIT.md §3, which the IdleViT rewrite puts in place of a dense
/// block:
///
///     norm1 = layer_norm(x)                               all N tokens, for scoring
///     selected = token_select(norm1, qkv weight[, bias])   prefix tokens + top K, i32[B, S]
///     tokens_selected = gather_tokens(x, selected)
///     norm1_selected = gather_tokens(norm1, selected)
///     ... the dense block's attention and MLP on the S gathered rows ...
///     mlp_residual = add(attn_residual, fc2 or ls2)
///     blocks.{i} = scatter_tokens(x, selected, mlp_residual)
///
/// `emit` writes it; `match` reads one back and says which dense block it stands for, which
/// is how a stored graph (a bundle) is checked against the model description without running
/// the rewrite again.
public enum IdleBlock {
    public static func emit(replacing dense: DenseBlock, keep: Int, prefix: Int, into builder: inout GraphBuilder) throws(GraphError) {
        let i = dense.index
        func name(_ part: BlockPart) -> String { ActivationName.blockPart(i, part).name }
        let x = dense.input
        try builder.add(dense.norm1.name, dense.norm1.op, dense.norm1.inputs)
        let selection = try TokenSelect(heads: dense.heads, keep: keep, prefix: prefix)
        let selected = try builder.add(name(.selected), .tokenSelect(selection), [dense.norm1.name] + dense.qkv.inputs.dropFirst())
        let tokens = try builder.add(name(.tokensSelected), .gatherTokens, [x, selected])
        let normed = try builder.add(name(.norm1Selected), .gatherTokens, [dense.norm1.name, selected])
        try builder.add(dense.qkv.name, dense.qkv.op, [normed] + dense.qkv.inputs.dropFirst())
        for node in [dense.attention, dense.proj] + [dense.layerScale1].compactMap({ $0 }) {
            try builder.add(node.name, node.op, node.inputs)
        }
        try builder.add(dense.attentionResidual.name, .add, [tokens, dense.attentionResidual.inputs[1]])
        for node in [dense.norm2, dense.fc1, dense.activation, dense.fc2] + [dense.layerScale2].compactMap({ $0 }) {
            try builder.add(node.name, node.op, node.inputs)
        }
        let output = try builder.add(name(.mlpResidual), .add, dense.output.inputs)
        try builder.add(dense.output.name, .scatterTokens, [x, selected, output])
    }

    public struct Match: Sendable {
        public let index: Int
        public let selection: TokenSelect
        /// The dense block nodes this idle block computes the selected rows of.
        public let dense: [Node]
        /// Nodes the idle block spans in the graph.
        public let length: Int
    }

    /// The idle block starting at `position`, if one does, with the dense nodes it replaced.
    public static func match(nodes: [Node], at position: Int) -> Match? {
        // Shape: norm1, selected, tokens_selected, norm1_selected, qkv, attention, proj[, ls1],
        // attn_residual, norm2, fc1, act, fc2[, ls2], mlp_residual, scatter.
        guard position + 14 <= nodes.count else { return nil }
        let norm1 = nodes[position], select = nodes[position + 1], tokens = nodes[position + 2], normed = nodes[position + 3]
        guard norm1.kind == .layerNorm, case .tokenSelect(let selection) = select.op, select.inputs.first == norm1.name,
              tokens.kind == .gatherTokens, normed.kind == .gatherTokens, tokens.inputs == [norm1.inputs[0], select.name],
              normed.inputs == [norm1.name, select.name],
              case .blockPart(let index, .selected)? = ActivationName(select.name) else { return nil }
        let x = norm1.inputs[0]
        // The rest is the dense block's body on the gathered rows: rebuild the dense sequence
        // it stands for and let `DenseBlock` check its dataflow.
        var dense: [Node] = [norm1]
        var cursor = position + 4
        var end: Int?
        while cursor < nodes.count && cursor < position + 20 {
            let node = nodes[cursor]
            if node.kind == .scatterTokens {
                end = cursor
                break
            }
            dense.append(node)
            cursor += 1
        }
        guard let end, dense.count >= 10 else { return nil }
        let scatter = nodes[end]
        let last = dense[dense.count - 1]
        guard last.name == ActivationName.blockPart(index, .mlpResidual).name, scatter.inputs == [x, select.name, last.name],
              scatter.name == ActivationName.block(index).name else { return nil }
        // Undo what `emit` changed: qkv reads norm1, the attention residual reads x, and the
        // block output is the mlp residual add under the block's name.
        dense[1].inputs[0] = norm1.name
        guard let residualPosition = dense.firstIndex(where: { $0.name == ActivationName.blockPart(index, .attentionResidual).name }),
              dense[residualPosition].inputs.first == tokens.name else { return nil }
        dense[residualPosition].inputs[0] = x
        dense[dense.count - 1] = Node(scatter.name, .add, last.inputs, type: scatter.type)
        guard let block = DenseBlock(nodes: dense, at: 0), block.length == dense.count, block.index == index,
              Array(select.inputs.dropFirst()) == Array(block.qkv.inputs.dropFirst()), selection.heads == block.heads else { return nil }
        return Match(index: index, selection: selection, dense: dense, length: end + 1 - position)
    }
}
