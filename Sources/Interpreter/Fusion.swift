import IR

/// What an instruction does around a linear layer's product besides the node's own op, with
/// the operands that brings in (resolved like the node's inputs).
struct Fusion {
    /// GELU of the biased product: `gelu(linear(x))`.
    var gelu = false
    /// LayerScale's gamma: `scale(linear(x), gamma)`, applied after the activation.
    var scale: Operand?
    /// Added last: `add(r, linear(x))`, `add(linear(x), r)` or the same around the scale.
    var residual: Operand?
    /// A residual that is `gather_tokens(x, selected)`: its rows are read from x in place
    /// (then `residual` is nil).
    var gatheredResidual: GatheredRows?
    /// `linear(layer_norm(x))`: the LayerNorm is applied as the product reads its rows.
    var layerNorm: FusedLayerNorm?
    /// `linear(gather_tokens(x, selected))`: the product reads x's selected rows in place.
    var gatheredInput: GatheredRows?

    /// The operands beyond the node's own, in the order `FusedPointers` resolves them.
    var operands: [Operand] {
        [scale, residual, gatheredResidual?.source, gatheredResidual?.selection, layerNorm?.input, layerNorm?.weight,
         layerNorm?.bias, gatheredInput?.source, gatheredInput?.selection].compactMap { $0 }
    }

    var isEmpty: Bool {
        !gelu && scale == nil && residual == nil && gatheredResidual == nil && layerNorm == nil && gatheredInput == nil
    }
}

/// A `gather_tokens` fused into the product that reads its value: the rows it would copy are
/// read where they are (an idle block's LN1 rows into qkv, its stream rows into proj's
/// residual). Only a selection `token_select` made is fused, so every index is a valid token.
struct GatheredRows {
    /// The gather's step, its source ([B, N, C]) and its selection (i32 [B, S]).
    var step: Int
    var source: Operand
    var selection: Operand
    /// N and S.
    var sourceTokens: Int
    var selected: Int
}

struct FusedLayerNorm {
    /// The LayerNorm's step, its input and parameters.
    var step: Int
    var input: Operand
    var weight: Operand
    var bias: Operand
    var eps: Float
}

/// Finds the fusions of one lowering. Fusion happens at plan time, not in the IR, so the graph
/// (and every activation name verify compares) stays as the importer built it; a value is
/// fused away only when it is not captured and the fused instruction is its only reader. The
/// fused instruction writes the last consumer's value; the intermediate values are never stored.
///
/// Around a `linear` (only consumers are followed, never a value read twice):
/// - after it, `gelu` (fc1 + act), or `scale` then optionally an `add` (LayerScale + residual),
///   or an `add` of a value computed before the linear (attn.proj / mlp.fc2 + residual);
/// - before it, the `layer_norm` producing its input (LN1 -> qkv, LN2 -> fc1 of a dense block),
///   or else the `gather_tokens` producing it (an idle block's qkv reading LN1's selected rows);
/// - a residual that a `gather_tokens` produces (an idle block's proj + the selected rows).
/// Gathers fuse only into products that compute every row (`fullRows`): row demand's
/// products run one token row at a time on strided rows, which picked rows do not take.
/// The OpenBLAS engine takes only GELU and residual fusions, which is what it can do after sgemm.
struct FusionPlanner {
    struct Plan {
        /// The step whose value the fused instruction writes.
        var output: Int
        var fusion: Fusion
        var label: String
        /// Steps whose own instructions disappear into this one.
        var absorbed: [Int]
    }

    let steps: [Step]
    let consumers: [[Int]]
    let isCaptured: [Bool]
    let packed: Bool
    /// Whether the step computes every row of its value (no row demand on it).
    var fullRows: (Int) -> Bool = { _ in true }

    /// The fusion plan of each linear step that fuses anything (by step index).
    func plans() -> [Int: Plan] {
        var plans: [Int: Plan] = [:]
        for i in steps.indices where steps[i].node.kind == .linear {
            // The LayerNorm prologue and LayerScale exist in the packed kernels only, and a
            // linear runs them only when its weight was packed (a constant; a weight the graph
            // computes goes to OpenBLAS even under the packed backend).
            let packedHere = packed && steps[i].packed != nil
            var plan = Plan(output: i, fusion: Fusion(), label: "linear", absorbed: [])
            followConsumers(of: i, packed: packedHere, into: &plan)
            if packedHere, case .node(let l) = steps[i].operands[0], case .layerNorm(let norm) = steps[l].node.op,
               fusible(l, into: i) {
                let operands = steps[l].operands
                plan.fusion.layerNorm = FusedLayerNorm(step: l, input: operands[0], weight: operands[1], bias: operands[2],
                                                       eps: Float(norm.eps))
                plan.absorbed.append(l)
                plan.label = "layer_norm+" + plan.label
            } else if packedHere, fullRows(i), fullRows(plan.output), let gathered = gathered(steps[i].operands[0], into: i) {
                plan.fusion.gatheredInput = gathered
                plan.absorbed.append(gathered.step)
                plan.label = "gather_tokens+" + plan.label
            }
            if packedHere, fullRows(i), fullRows(plan.output),
               let gathered = plan.fusion.residual.flatMap({ gathered($0, into: plan.output) }) {
                plan.fusion.residual = nil
                plan.fusion.gatheredResidual = gathered
                plan.absorbed.append(gathered.step)
                plan.label += "(gathered)"
            }
            if !plan.fusion.isEmpty { plans[i] = plan }
        }
        return plans
    }

    private func followConsumers(of linear: Int, packed: Bool, into plan: inout Plan) {
        guard !isCaptured[linear], consumers[linear].count == 1 else { return }
        let j = consumers[linear][0]
        switch steps[j].node.kind {
        case .gelu:
            plan.fusion.gelu = true
            absorb(j, "gelu", into: &plan)
        case .scale where packed:
            // The gamma must not be the linear's own value and must exist before it runs.
            guard case .node(let x) = steps[j].operands[0], x == linear, available(steps[j].operands[1], before: linear) else { return }
            plan.fusion.scale = steps[j].operands[1]
            absorb(j, "scale", into: &plan)
            if !isCaptured[j], consumers[j].count == 1, let residual = residual(of: consumers[j][0], producer: j, before: linear) {
                plan.fusion.residual = residual
                absorb(consumers[j][0], "add", into: &plan)
            }
        case .add:
            if let residual = residual(of: j, producer: linear, before: linear) {
                plan.fusion.residual = residual
                absorb(j, "add", into: &plan)
            }
        default:
            break
        }
    }

    private func absorb(_ step: Int, _ name: String, into plan: inout Plan) {
        plan.output = step
        plan.absorbed.append(step)
        plan.label += "+" + name
    }

    /// The gather producing `operand`, if `reader` is its only reader, it is not captured, and
    /// its selection comes from a `token_select`.
    private func gathered(_ operand: Operand, into reader: Int) -> GatheredRows? {
        guard case .node(let g) = operand, case .gatherTokens = steps[g].node.op, fusible(g, into: reader),
              steps[g].operands.count == 2, case .node(let select) = steps[g].operands[1],
              case .tokenSelect = steps[select].node.op,
              let tokens = steps[g].inputTypes[0].extent(1), let selected = steps[g].inputTypes[1].extent(1), selected > 0
        else { return nil }
        return GatheredRows(step: g, source: steps[g].operands[0], selection: steps[g].operands[1], sourceTokens: tokens,
                            selected: selected)
    }

    /// A LayerNorm whose only reader is the linear, and not captured.
    private func fusible(_ producer: Int, into consumer: Int) -> Bool {
        !isCaptured[producer] && consumers[producer] == [consumer]
    }

    /// The add's operand that is not `producer`, if the shapes match and it exists before
    /// `before` runs.
    private func residual(of add: Int, producer: Int, before: Int) -> Operand? {
        let step = steps[add]
        guard step.node.kind == .add, step.operands.count == 2, step.inputTypes[0] == step.inputTypes[1] else { return nil }
        let other: Operand
        switch (step.operands[0], step.operands[1]) {
        case (.node(let a), let b) where a == producer: other = b
        case (let a, .node(let b)) where b == producer: other = a
        default: return nil
        }
        return available(other, before: before) ? other : nil
    }

    private func available(_ operand: Operand, before step: Int) -> Bool {
        if case .node(let index) = operand { return index < step }
        return true
    }
}
