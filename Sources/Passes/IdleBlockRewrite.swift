import IR

/// The IdleViT rewrite (IDLEVIT.md §3).
///
/// Matches: each dense pre-norm block as the DeiT builders emit it, ten nodes ending in the
/// add named `blocks.{i}`: layer_norm -> linear qkv -> attention -> linear proj -> add (x) ->
/// layer_norm -> linear fc1 -> gelu -> linear fc2 -> add.
///
/// Rewrites: every layer the schedule gives K tokens into
///
///     norm1 = layer_norm(x)                          all N tokens, for scoring
///     selected = token_select(norm1, qkv weights)    prefix tokens + top K, i32[B, S]
///     x_sel, norm1_sel = gather_tokens(x | norm1, selected)
///     ... the block's own attention and MLP on the S gathered rows ...
///     blocks.{i} = scatter_tokens(x, selected, result)
///
/// Layers the schedule leaves dense, or where K keeps every patch, are untouched, so keep
/// ratio 1 reproduces the dense graph node for node and bit for bit.
///
/// Invariant after it: the graph validates; every idle layer exposes `blocks.{i}.selected`;
/// rows not selected flow from `x` to `blocks.{i}` through a copy only (bit-identical); the
/// graph's metadata records the schedule (`idle`).
public struct IdleBlockRewrite: GraphPass {
    public let name = "IdleBlockRewrite"
    public var schedule: IdleSchedule

    public init(schedule: IdleSchedule) { self.schedule = schedule }

    public func run(_ graph: Graph) throws -> Graph {
        guard let architecture = graph.architecture else { throw ScheduleError.notADeiTGraph("the graph has no DeiT architecture") }
        guard schedule.kept.count == architecture.depth else {
            throw ScheduleError.wrongLength(schedule.kept.count, depth: architecture.depth)
        }
        guard schedule.patchCount == architecture.patchCount else {
            throw ScheduleError.notADeiTGraph("the schedule is for \(schedule.patchCount) patches, the model has \(architecture.patchCount)")
        }
        let effective = schedule.effective
        var result = graph
        result.nodes = []
        var builder = GraphBuilder(result)
        var position = 0
        var rewritten = Set<Int>()
        let nodes = graph.nodes
        while position < nodes.count {
            if let block = DenseBlock(nodes: nodes, at: position), let keep = schedule.idleKept(layer: block.index) {
                try emitIdle(block, keep: keep, prefix: architecture.prefixTokens, into: &builder)
                rewritten.insert(block.index)
                position += DenseBlock.length
            } else {
                let node = nodes[position]
                try builder.add(node.name, node.op, node.inputs)
                position += 1
            }
        }
        result = builder.graph
        for layer in effective.idleLayers where !rewritten.contains(layer) {
            throw ScheduleError.notADeiTGraph("block \(layer) is not a dense DeiT block (already rewritten?)")
        }
        result.metadata["idle"] = IdleMetadata.encode(schedule)
        return result
    }

    private func emitIdle(_ block: DenseBlock, keep: Int, prefix: Int, into builder: inout GraphBuilder) throws {
        let b = "blocks.\(block.index)."
        let n = block.nodes
        let x = block.input
        try builder.add(n[0].name, n[0].op, n[0].inputs)
        let selection = try TokenSelect(heads: block.heads, keep: keep, prefix: prefix)
        let selected = try builder.add(b + "selected", .tokenSelect(selection), [n[0].name] + n[1].inputs.dropFirst())
        let xSelected = try builder.add(b + "tokens_selected", .gatherTokens, [x, selected])
        let normSelected = try builder.add(b + "norm1_selected", .gatherTokens, [n[0].name, selected])
        try builder.add(n[1].name, n[1].op, [normSelected] + n[1].inputs.dropFirst())
        try builder.add(n[2].name, n[2].op, [n[1].name])
        try builder.add(n[3].name, n[3].op, n[3].inputs)
        try builder.add(n[4].name, .add, [xSelected, n[3].name])
        for node in n[5...8] { try builder.add(node.name, node.op, node.inputs) }
        let output = try builder.add(b + "mlp_residual", .add, [n[4].name, n[8].name])
        try builder.add(n[9].name, .scatterTokens, [x, selected, output])
    }
}

/// Ten consecutive nodes forming one dense pre-norm block, checked by dataflow, not names
/// alone: the residual adds must read the block input and the right branch outputs.
struct DenseBlock {
    static let length = 10
    let nodes: [Node]
    let index: Int
    let input: String
    let heads: Int

    init?(nodes all: [Node], at position: Int) {
        guard position + DenseBlock.length <= all.count else { return nil }
        let n = Array(all[position..<position + DenseBlock.length])
        let ops: [OpKind] = [.layerNorm, .linear, .attention, .linear, .add, .layerNorm, .linear, .gelu, .linear, .add]
        guard n.map(\.kind) == ops, case .linear(let qkv) = n[1].op, qkv.rows == nil,
              case .attention(let attention) = n[2].op else { return nil }
        let x = n[0].inputs[0]
        guard n[1].inputs[0] == n[0].name, n[2].inputs == [n[1].name],
              n[3].inputs[0] == n[2].name, n[4].inputs == [x, n[3].name],
              n[5].inputs[0] == n[4].name, n[6].inputs[0] == n[5].name, n[7].inputs == [n[6].name],
              n[8].inputs[0] == n[7].name, n[9].inputs == [n[4].name, n[8].name] else { return nil }
        guard n[9].name.hasPrefix("blocks."), let index = Int(n[9].name.dropFirst("blocks.".count)) else { return nil }
        self.nodes = n
        self.index = index
        self.input = x
        self.heads = attention.heads
    }
}
