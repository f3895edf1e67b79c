import IR

/// A graph lowered for one batch size and one set of captured values: the order of kernel
/// calls after fusion, concrete shapes, and the memory plan.
///
/// Fusion happens here, not in the IR, so the graph (and every activation name verify
/// compares) stays as the importer built it. A `linear` is fused with its only consumer when
/// its own output is not captured:
/// - `gelu(linear(x))` -> one kernel whose epilogue applies GELU (fc1 + act);
/// - `add(r, linear(x))` or `add(linear(x), r)` with `r` computed earlier and the same shape ->
///   one kernel that starts from `r + b` (attn.proj and mlp.fc2 with their residuals).
/// The fused instruction writes the consumer's value; the linear's own value is never stored.
/// An instruction may also overwrite an operand that dies at it (`scatter_tokens` over its
/// `x`, a residual add over `r`), unless that operand is captured: verify still sees every
/// captured value as it was produced.
struct Program {
    enum Fusion {
        case none
        case gelu
        /// Operand that is the residual, resolved like the node's inputs.
        case residual(Operand)
    }

    struct Instruction {
        /// Index of the node (step) whose kernel runs.
        var step: Int
        /// Index of the node whose value this writes (the consumer, when fused).
        var output: Int
        var fusion: Fusion
        var inputShapes: [[Int]]
        var outputShape: [Int]
        /// Label for profiles: the op, plus the fused consumer.
        var label: String
        /// Floating-point operations of the matrix products, for profiles.
        var flops: Double = 0
        /// Rows per image to compute (`RowDemand`), nil for all.
        var rowLimit: Int?
    }

    let instructions: [Instruction]
    let layout: MemoryPlan
    /// Steps whose values are captured (copied out after a run), in order.
    let captured: [Int]

    init(steps: [Step], batch: Int, captured: Set<String>, threads: Int, fuse: Bool, limitRows: Bool) {
        var consumers = [[Int]](repeating: [], count: steps.count)
        for (i, step) in steps.enumerated() {
            for case .node(let index) in step.operands where consumers[index].last != i { consumers[index].append(i) }
        }
        let isCaptured = steps.map { captured.contains($0.node.name) }
        let demand = limitRows ? RowDemand.compute(steps: steps, captured: isCaptured) : []

        var instructions: [Instruction] = []
        var fusedAway = Set<Int>()
        for (i, step) in steps.enumerated() where !fusedAway.contains(i) {
            var output = i
            var fusion = Fusion.none
            var label = step.node.kind.rawValue
            if fuse, step.node.kind == .linear, !isCaptured[i], consumers[i].count == 1 {
                let j = consumers[i][0]
                let consumer = steps[j]
                if consumer.node.kind == .gelu {
                    (output, fusion, label) = (j, .gelu, "linear+gelu")
                } else if consumer.node.kind == .add, let residual = Program.residual(of: consumer, linear: i),
                          consumer.inputTypes[0] == consumer.inputTypes[1] {
                    (output, fusion, label) = (j, .residual(residual), "linear+add")
                }
                if output != i { fusedAway.insert(j) }
            }
            let inputShapes = step.inputTypes.map { $0.concreteShape(batch: batch) }
            let outputShape = step.node.type.concreteShape(batch: batch)
            let finalShape = steps[output].node.type.concreteShape(batch: batch)
            let rowLimit = limitRows ? RowDemand.limit(demand[output], shape: finalShape) : nil
            var flops = Program.flops(step.node, inputShapes: inputShapes, outputShape: outputShape)
            if let rowLimit { flops *= Double(rowLimit) / Double(finalShape[1]) }
            instructions.append(Instruction(step: i, output: output, fusion: fusion, inputShapes: inputShapes,
                                            outputShape: finalShape, label: rowLimit == nil ? label : label + " (rows)",
                                            flops: flops, rowLimit: rowLimit))
        }

        // Liveness by instruction position.
        var lastUse = [Int](repeating: -1, count: steps.count)
        for (p, instruction) in instructions.enumerated() {
            for case .node(let index) in steps[instruction.step].operands { lastUse[index] = p }
            if case .residual(.node(let index)) = instruction.fusion { lastUse[index] = p }
        }
        var requests: [MemoryPlan.Request] = []
        for (p, instruction) in instructions.enumerated() {
            let value = instruction.output
            let bytes = steps[value].node.type.elementCount(batch: batch) * 4
            let keep = isCaptured[value] ? Int.max : max(lastUse[value], p)
            var alias: Int?
            if let candidate = Program.inPlaceOperand(instruction, steps: steps),
               !isCaptured[candidate], lastUse[candidate] == p,
               !Program.readsBesidesInPlace(instruction, candidate, steps: steps),
               steps[candidate].node.type.elementCount(batch: batch) * 4 == bytes {
                alias = candidate
            }
            requests.append(MemoryPlan.Request(value: value, bytes: bytes, lastUse: keep, alias: alias,
                                               scratchBytes: Program.scratchBytes(steps[instruction.step], batch: batch, threads: threads)))
        }
        self.instructions = instructions
        self.captured = steps.indices.filter { isCaptured[$0] }
        self.layout = MemoryPlan.make(values: steps.count, requests: requests)
    }

    /// The add's operand that is not the linear, if it is available before the linear runs.
    private static func residual(of add: Step, linear: Int) -> Operand? {
        guard add.operands.count == 2 else { return nil }
        let other: Operand
        switch (add.operands[0], add.operands[1]) {
        case (.node(let a), let b) where a == linear: other = b
        case (let a, .node(let b)) where b == linear: other = a
        default: return nil
        }
        if case .node(let index) = other, index >= linear { return nil }
        return other
    }

    /// The operand a kernel can overwrite in place, if the op allows it.
    private static func inPlaceOperand(_ instruction: Instruction, steps: [Step]) -> Int? {
        switch instruction.fusion {
        case .residual(.node(let index)): return index
        case .residual, .gelu: return nil
        case .none: break
        }
        let step = steps[instruction.step]
        switch step.node.kind {
        case .scatterTokens, .add:
            if case .node(let index) = step.operands[0] { return index }
            return nil
        default:
            return nil
        }
    }

    /// Whether the kernel reads `candidate` through another operand than the one it writes
    /// over (`add(x, linear(x))`, a scatter of a value into itself): then it must not alias.
    private static func readsBesidesInPlace(_ instruction: Instruction, _ candidate: Int, steps: [Step]) -> Bool {
        let operands = steps[instruction.step].operands
        let others: ArraySlice<Operand>
        if case .residual = instruction.fusion {
            others = operands[...]
        } else if steps[instruction.step].node.kind == .add {
            return false
        } else {
            others = operands.dropFirst()
        }
        return others.contains { if case .node(let index) = $0 { return index == candidate } else { return false } }
    }

    private static func flops(_ node: Node, inputShapes: [[Int]], outputShape: [Int]) -> Double {
        switch node.kind {
        case .linear:
            return 2 * Double(outputShape.elementCount) * Double(inputShapes[0].last!)
        case .patchEmbed:
            let weight = inputShapes[1]
            return 2 * Double(outputShape.elementCount) * Double(weight.dropFirst().reduce(1, *))
        case .attention:
            // Q K^T and P V: 2 S^2 C multiply-adds per image.
            return 4 * Double(outputShape[0]) * Double(outputShape[1] * outputShape[1]) * Double(outputShape[2])
        default:
            return 0
        }
    }

    private static func scratchBytes(_ step: Step, batch: Int, threads: Int) -> Int {
        switch step.node.op {
        case .patchEmbed(let embed):
            let image = step.inputTypes[0].concreteShape(batch: batch)
            return 4 * PatchEmbedKernel.scratchFloats(channels: image[1], height: image[2], width: image[3], patch: embed.patch)
        case .attention:
            return 4 * AttentionKernel.scratchFloats(tokens: step.node.type.extent(1)!, threads: threads)
        case .tokenSelect:
            let x = step.inputTypes[0].concreteShape(batch: batch)
            return 8 * TokenSelectKernel.scratchDoubles(batch: x[0], tokens: x[1], channels: x[2])
        default:
            return 0
        }
    }
}
