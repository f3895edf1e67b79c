import IR
import ModelDescription

/// The IdleViT rewrite (IDLEVIT.md §3).
///
/// Matches: each dense pre-norm block as the model description emits it (`DenseBlock`:
/// layer_norm -> qkv -> attention -> proj [-> ls1] -> add -> layer_norm -> fc1 -> gelu -> fc2
/// [-> ls2] -> add, found by dataflow).
///
/// Rewrites: every layer the schedule gives K tokens into the idle block (`IdleBlock`):
///
///     norm1 = layer_norm(x)                          all N tokens, for scoring
///     selected = token_select(norm1, qkv weights)    prefix tokens + top K, i32[B, S]
///     x_sel, norm1_sel = gather_tokens(x | norm1, selected)
///     ... the block's own attention and MLP (and LayerScale) on the S gathered rows ...
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
        guard let architecture = graph.architecture else { throw ScheduleError.notAModelGraph("the graph has no architecture") }
        guard schedule.kept.count == architecture.depth else {
            throw ScheduleError.wrongLength(schedule.kept.count, depth: architecture.depth)
        }
        guard schedule.patchCount == architecture.patchCount else {
            throw ScheduleError.notAModelGraph("the schedule is for \(schedule.patchCount) patches, the model has \(architecture.patchCount)")
        }
        var result = graph
        result.nodes = []
        var builder = GraphBuilder(result)
        var position = 0
        var rewritten = Set<Int>()
        let nodes = graph.nodes
        while position < nodes.count {
            if let block = DenseBlock(nodes: nodes, at: position), let keep = schedule.idleKept(layer: block.index) {
                try IdleBlock.emit(replacing: block, keep: keep, prefix: architecture.prefixTokens, into: &builder)
                rewritten.insert(block.index)
                position += block.length
            } else {
                let node = nodes[position]
                try builder.add(node.name, node.op, node.inputs)
                position += 1
            }
        }
        result = builder.graph
        for layer in schedule.effective.idleLayers where !rewritten.contains(layer) {
            throw ScheduleError.notAModelGraph("block \(layer) is not a dense block (already rewritten?)")
        }
        result.metadata["idle"] = IdleMetadata.encode(schedule)
        return result
    }
}
