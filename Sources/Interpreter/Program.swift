import IR

/// A graph lowered for one batch size and one set of captured values: the order of kernel
/// calls after fusion (`FusionPlanner`), concrete shapes, and the memory plan.
///
/// An instruction may also overwrite an operand that dies at it (`scatter_tokens` over its
/// `x`, a residual add over `r`), unless that operand is captured: verify still sees every
/// captured value as it was produced.
struct Program {
    /// What shapes a lowering besides the graph: the interpreter's options and kernels.
    struct Settings {
        var threads: Int
        var fuse: Bool
        var rowDemand: Bool
        var kernels: CPUKernels
        var backend: MatrixBackend
    }

    struct Instruction {
        /// Index of the node (step) whose kernel runs.
        var step: Int
        /// Index of the node whose value this writes (the last consumer, when fused).
        var output: Int
        var fusion: Fusion
        var inputShapes: [[Int]]
        var outputShape: [Int]
        /// Label for profiles: the op, plus what is fused into it.
        var label: String
        /// Floating-point operations of the matrix products, for profiles.
        var flops: Double = 0
        /// Rows per image to compute (`RowDemand`), nil for all.
        var rowLimit: Int?
        /// A fused qkv product's rows per image of its query third (`RowDemand.queryRows`).
        var queryRowLimit: Int?
    }

    let instructions: [Instruction]
    let layout: MemoryPlan
    /// Steps whose values are captured (copied out after a run), in order.
    let captured: [Int]

    init(steps: [Step], batch: Int, captured: Set<String>, settings: Settings) {
        var consumers = [[Int]](repeating: [], count: steps.count)
        for (i, step) in steps.enumerated() {
            for case .node(let index) in step.operands where consumers[index].last != i { consumers[index].append(i) }
        }
        let isCaptured = steps.map { captured.contains($0.node.name) }
        let demand = settings.rowDemand ? RowDemand.compute(steps: steps, captured: isCaptured) : []
        let queryRows = settings.rowDemand
            ? RowDemand.queryRows(steps: steps, demand: demand, captured: isCaptured, consumers: consumers, batch: batch) : []
        // Rows per image each step's value is computed for (nil: all), read by the fusion plan
        // (gathers fuse only into products computing every row) and by the instructions.
        let rowLimits: [Int?] = settings.rowDemand
            ? steps.indices.map { RowDemand.limit(demand[$0], shape: steps[$0].node.type.concreteShape(batch: batch)) }
            : Array(repeating: nil, count: steps.count)
        let fullRows = { (step: Int) -> Bool in rowLimits[step] == nil && (queryRows.isEmpty || queryRows[step] == nil) }
        let plans = settings.fuse
            ? FusionPlanner(steps: steps, consumers: consumers, isCaptured: isCaptured, packed: settings.backend == .packed,
                            fullRows: fullRows).plans()
            : [:]
        let fusedAway = Set(plans.values.flatMap(\.absorbed))

        var instructions: [Instruction] = []
        for (i, step) in steps.enumerated() where !fusedAway.contains(i) {
            let plan = plans[i]
            let output = plan?.output ?? i
            let label = plan?.label ?? step.node.kind.rawValue
            let inputShapes = step.inputTypes.map { $0.concreteShape(batch: batch) }
            let outputShape = step.node.type.concreteShape(batch: batch)
            let finalShape = steps[output].node.type.concreteShape(batch: batch)
            let rowLimit = rowLimits[output]
            var flops = Program.flops(step.node, inputShapes: inputShapes, outputShape: outputShape)
            if let rowLimit { flops *= Double(rowLimit) / Double(finalShape[1]) }
            // Only the product's own value (nothing fused after it) can be cut by columns.
            let queryRowLimit = output == i && settings.rowDemand ? queryRows[i] : nil
            if let queryRowLimit { flops *= (2 + Double(queryRowLimit) / Double(finalShape[1])) / 3 }
            instructions.append(Instruction(step: i, output: output, fusion: plan?.fusion ?? Fusion(), inputShapes: inputShapes,
                                            outputShape: finalShape,
                                            label: label + (rowLimit != nil ? " (rows)" : queryRowLimit != nil ? " (query rows)" : ""),
                                            flops: flops, rowLimit: rowLimit,
                                            queryRowLimit: queryRowLimit))
        }

        // Liveness by instruction position.
        var lastUse = [Int](repeating: -1, count: steps.count)
        for (p, instruction) in instructions.enumerated() {
            for case .node(let index) in steps[instruction.step].operands + instruction.fusion.operands { lastUse[index] = p }
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
                                               scratchBytes: Program.scratchBytes(instruction, steps[instruction.step], batch: batch,
                                                                                  settings: settings)))
        }
        self.instructions = instructions
        self.captured = steps.indices.filter { isCaptured[$0] }
        self.layout = MemoryPlan.make(values: steps.count, requests: requests)
    }

    /// The operand a kernel can overwrite in place, if the op allows it.
    private static func inPlaceOperand(_ instruction: Instruction, steps: [Step]) -> Int? {
        if let residual = instruction.fusion.residual {
            if case .node(let index) = residual { return index }
            return nil
        }
        guard instruction.fusion.isEmpty else { return nil }
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
        let others: [Operand]
        if instruction.fusion.residual != nil {
            var fused = instruction.fusion
            fused.residual = nil
            others = operands + fused.operands
        } else if steps[instruction.step].node.kind == .add {
            return false
        } else {
            others = Array(operands.dropFirst())
        }
        return others.contains { if case .node(let index) = $0 { return index == candidate } else { return false } }
    }

    private static func flops(_ node: Node, inputShapes: [[Int]], outputShape: [Int]) -> Double {
        switch node.kind {
        case .linear:
            return 2 * Double(outputShape.elementCount) * Double(inputShapes[0].last!)
        case .patchEmbed, .conv2d:
            let weight = inputShapes[1]
            return 2 * Double(outputShape.elementCount) * Double(weight.dropFirst().reduce(1, *))
        case .attention:
            // Q K^T and P V: 2 S^2 C multiply-adds per image.
            return 4 * Double(outputShape[0]) * Double(outputShape[1] * outputShape[1]) * Double(outputShape[2])
        default:
            return 0
        }
    }

    private static func scratchBytes(_ instruction: Instruction, _ step: Step, batch: Int, settings: Settings) -> Int {
        let packed = settings.backend == .packed
        switch step.node.op {
        case .patchEmbed(let embed):
            let image = step.inputTypes[0].concreteShape(batch: batch)
            return 4 * PatchEmbedKernel.scratchFloats(channels: image[1], height: image[2], width: image[3], patch: embed.patch)
        case .attention(let attention):
            let tokens = step.node.type.extent(1)!
            if !packed { return 4 * BLASAttentionKernel.scratchFloats(tokens: tokens, threads: settings.threads) }
            let channels = step.node.type.extent(2)!
            return 4 * AttentionKernel.scratchFloats(kernels: settings.kernels, tokens: tokens,
                                                     headDimension: channels / attention.heads, threads: settings.threads)
        case .linear where instruction.fusion.layerNorm != nil:
            let x = instruction.inputShapes[0]
            let inFeatures = x.last!
            // Per call: all rows, or one token row of every image under row demand.
            let rows = instruction.rowLimit == nil ? x.elementCount / inFeatures : x[0]
            return 4 * LinearKernel.workspaceFloats(kernels: settings.kernels, rows: rows, inFeatures: inFeatures,
                                                    outFeatures: instruction.outputShape.last!, threads: settings.threads)
        case .tokenSelect:
            let x = step.inputTypes[0].concreteShape(batch: batch)
            return 8 * TokenSelectKernel.scratchDoubles(batch: x[0], tokens: x[1], channels: x[2])
        case .conv2d:
            return Interpreter.convolutionScratchBytes(step, batch: batch)
        default:
            return 0
        }
    }
}
