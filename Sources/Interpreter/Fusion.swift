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
    /// `linear(layer_norm(x))`: the LayerNorm is applied as the product reads its rows.
    var layerNorm: FusedLayerNorm?

    /// The operands beyond the node's own, in the order `PreparedProgram` resolves them.
    var operands: [Operand] {
        [scale, residual, layerNorm?.input, layerNorm?.weight, layerNorm?.bias].compactMap { $0 }
    }

    var isEmpty: Bool { !gelu && scale == nil && residual == nil && layerNorm == nil }
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
/// - before it, the `layer_norm` producing its input (LN1 -> qkv, LN2 -> fc1 of a dense block).
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
