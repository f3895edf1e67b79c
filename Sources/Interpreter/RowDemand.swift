import IR

/// Which token rows of each value anything downstream reads: the first k rows of every image,
/// or all of them.
///
/// A classifier reads only the class (and distillation) token of `norm`, so in the last block
/// everything after attention (proj, residual, LayerNorm, MLP) and the attention's queries are
/// needed for those one or two rows only; keys and values still come from every token. When
/// none of those values is captured (`run`, `bench`: only the logits are asked for), the
/// kernels compute just the demanded rows: about a twelfth less work for a 12-block DeiT,
/// with the same logits (row-wise kernels do the same arithmetic on fewer rows).
///
/// Row-wise ops (LayerNorm, linear, GELU, add) pass the demand through; `take_token` demands
/// rows up to its index; attention turns any demand on its output into all rows of its input;
/// `gather_tokens` and `scatter_tokens` pass a demand of at most the prefix tokens through,
/// because `token_select` lists the prefix tokens first (selected position p < prefix is token
/// p). Everything else, and every captured value, demands all rows.
enum RowDemand {
    static let all = Int.max

    /// `demand[i]`: rows per image of step i's value that are read (0: none, `all`: every row).
    static func compute(steps: [Step], captured: [Bool]) -> [Int] {
        var demand = [Int](repeating: 0, count: steps.count)
        for i in steps.indices where captured[i] { demand[i] = all }
        for j in steps.indices.reversed() {
            let step = steps[j]
            let out = demand[j]
            func require(_ position: Int, _ rows: Int) {
                guard position < step.operands.count, case .node(let index) = step.operands[position] else { return }
                demand[index] = max(demand[index], rows)
            }
            switch step.node.op {
            case .takeToken(let take):
                require(0, take.index + 1)
            case .layerNorm, .gelu, .linear:
                require(0, out)
            case .scale:
                require(0, out)
                require(1, all)
            case .add, .mean:
                for position in step.operands.indices { require(position, out) }
            case .gatherTokens, .scatterTokens:
                let prefix = selectionPrefix(steps: steps, index: step.operands[1])
                let passes = out <= prefix
                require(0, passes ? out : all)
                require(1, all)
                if step.node.kind == .scatterTokens { require(2, passes ? out : all) }
            default:
                for position in step.operands.indices { require(position, all) }
            }
        }
        return demand
    }

    /// For a fused qkv product whose one reader is an attention computing `limit` queries per
    /// image: `limit`, the rows per image its query third needs (its key and value thirds
    /// need every row). nil for every other step. In the last block this leaves a third of
    /// the qkv product undone: N C^2 of the dense block's ~12 N C^2 multiply-adds.
    static func queryRows(steps: [Step], demand: [Int], captured: [Bool], consumers: [[Int]], batch: Int) -> [Int?] {
        steps.indices.map { i in
            guard case .linear = steps[i].node.op, !captured[i], consumers[i].count == 1 else { return nil }
            let reader = steps[consumers[i][0]]
            guard case .attention = reader.node.op, reader.operands.count == 1 else { return nil }
            return limit(demand[consumers[i][0]], shape: reader.node.type.concreteShape(batch: batch))
        }
    }

    /// The prefix count of the `token_select` producing a selection, 0 if unknown.
    private static func selectionPrefix(steps: [Step], index operand: Operand) -> Int {
        guard case .node(let producer) = operand, case .tokenSelect(let selection) = steps[producer].node.op else { return 0 }
        return selection.prefix
    }

    /// The row limit for a value of `shape` ([B, N, C]) under `demand`: nil when every row is
    /// computed (all demanded, not a token tensor, or nothing demanded at all).
    static func limit(_ demand: Int, shape: [Int]) -> Int? {
        guard shape.count == 3, demand > 0, demand < shape[1] else { return nil }
        return demand
    }
}
