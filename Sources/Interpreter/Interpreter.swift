import CBLAS
import IR

/// An activation the interpreter hands back: floats, or token indices from `token_select`.
public enum Activation: Sendable {
    case floats(FloatTensor)
    case indices(shape: [Int], values: [Int32])

    public var shape: [Int] {
        switch self {
        case .floats(let t): return t.shape
        case .indices(let shape, _): return shape
        }
    }

    public var floatTensor: FloatTensor? {
        if case .floats(let t) = self { return t }
        return nil
    }
}

/// Which values to copy out of a run.
public enum Capture: Sendable {
    case outputs
    case all
    case names(Set<String>)
}

public enum InterpreterError: Error, CustomStringConvertible {
    case invalidGraph(String)
    case badInput(String)

    public var description: String {
        switch self {
        case .invalidGraph(let message): return "cannot run the graph: \(message)"
        case .badInput(let message): return "bad input: \(message)"
        }
    }
}

/// Runs an IR graph on the CPU in Float32.
///
/// Preparation resolves every constant to a pointer once. Each batch size (and set of
/// captured values) gets a `Program`, built on first use and reused: kernel order after
/// fusion and one arena with offsets by liveness, so running allocates only the captured
/// copies. Matrix products go through single-threaded OpenBLAS calls that the kernels split
/// across `threads` workers themselves; row-wise kernels are vectorised and split the same way.
///
/// `IDLEVIT_PROFILE=1` in the environment prints, when the interpreter is released, the time
/// spent per kind of kernel over all runs (stderr). `IDLEVIT_FUSE=0` turns fusion off and
/// `IDLEVIT_ROWS=0` the row demand (`RowDemand`), to measure what they buy.
public final class Interpreter: @unchecked Sendable {
    public let graph: Graph
    public let threads: Int
    private let steps: [Step]
    private var programs: [PlanKey: PreparedProgram] = [:]
    private let outputNames: Set<String>
    private let profile: Profile?
    private let fuse: Bool
    private let limitRows: Bool
    /// Owns the copied weights the steps point into.
    private let weights: WeightCopy?
    /// Zeros standing in for the bias of a linear or token_select that has none (ViTs without
    /// qkv bias), as long as the widest such weight.
    let zeros: UnsafePointer<Float>

    public init(graph: Graph, threads: Int? = nil) throws(InterpreterError) {
        do {
            try GraphValidator.validate(graph)
        } catch {
            throw .invalidGraph(error.description)
        }
        self.graph = graph
        outputNames = Set(graph.outputs)
        self.threads = max(1, min(threads ?? onlineCoreCount(), 64))
        // Kernels thread their own BLAS calls; OpenBLAS threads on top would fight them.
        openblas_set_num_threads(LinearKernel.blasThreading ? Int32(self.threads) : 1)
        profile = environmentFlag("IDLEVIT_PROFILE") == true ? Profile() : nil
        fuse = environmentFlag("IDLEVIT_FUSE") ?? true
        limitRows = environmentFlag("IDLEVIT_ROWS") ?? true

        var nodeIndex: [String: Int] = [:]
        var steps: [Step] = []
        for (i, node) in graph.nodes.enumerated() {
            let operands: [Operand] = node.inputs.map { name in
                if let index = nodeIndex[name] { return .node(index) }
                if let position = graph.inputs.firstIndex(where: { $0.name == name }) { return .input(position) }
                return .constant(graph.constant(named: name)!.tensor!.pointer)
            }
            let types = node.inputs.map { graph.type(of: $0)! }
            steps.append(Step(node: node, operands: operands, inputTypes: types))
            nodeIndex[node.name] = i
        }
        // Linear and patch-embedding weights into owned, huge-page-backed memory (WeightCopy).
        if environmentFlag("IDLEVIT_COPY_WEIGHTS") ?? true {
            var tensors: [(pointer: UnsafePointer<Float>, count: Int)] = []
            for step in steps where step.node.kind == .linear || step.node.kind == .patchEmbed {
                if case .constant(let pointer) = step.operands[1] {
                    tensors.append((pointer, step.inputTypes[1].elementCount(batch: 1)))
                }
            }
            let copy = WeightCopy(tensors)
            for i in steps.indices {
                steps[i].operands = steps[i].operands.map { operand in
                    if case .constant(let pointer) = operand { return .constant(copy.pointer(for: pointer)) }
                    return operand
                }
            }
            weights = copy
        } else {
            weights = nil
        }
        self.steps = steps
        let widest = steps.map { $0.inputTypes.count > 1 ? $0.inputTypes[1].extent(0) ?? 0 : 0 }.max() ?? 0
        let zeroMemory = UnsafeMutablePointer<Float>.allocate(capacity: max(widest, 1))
        zeroMemory.initialize(repeating: 0, count: max(widest, 1))
        zeros = UnsafePointer(zeroMemory)
    }

    deinit {
        profile?.report()
        zeros.deallocate()
    }

    /// Runs the graph on `inputs` (by input name; the first input's leading extent is the batch).
    public func run(_ inputs: [String: FloatTensor], capture: Capture = .outputs) throws(InterpreterError) -> [String: Activation] {
        var inputPointers: [UnsafeRawPointer] = []
        var batch = -1
        for input in graph.inputs {
            guard let tensor = inputs[input.name] else { throw .badInput("missing input '\(input.name)'") }
            guard tensor.shape.count == input.type.rank, let b = tensor.shape.first, b > 0 else {
                throw .badInput("'\(input.name)' has shape \(describeShape(tensor.shape)), expected \(input.type)")
            }
            if batch < 0 { batch = b }
            guard tensor.shape == input.type.concreteShape(batch: batch) else {
                throw .badInput("'\(input.name)' has shape \(describeShape(tensor.shape)), expected \(describeShape(input.type.concreteShape(batch: batch)))")
            }
            inputPointers.append(UnsafeRawPointer(tensor.pointer))
        }
        let captured: Set<String>
        switch capture {
        case .outputs: captured = outputNames
        case .all: captured = Set(graph.nodes.map(\.name))
        case .names(let names): captured = names.union(graph.outputs)
        }
        let prepared = preparedProgram(batch: batch, captured: captured)
        let program = prepared.program
        let arena = prepared.arena
        let offsets = program.layout.valueOffsets

        for (slot, position) in prepared.inputSlots { prepared.pointers[slot] = inputPointers[position] }
        prepared.pointers.withUnsafeBufferPointer { pointers in
            for (p, instruction) in program.instructions.enumerated() {
                let mark = profile?.start()
                let residual = prepared.residualSlots[p].map { pointers[$0].assumingMemoryBound(to: Float.self) }
                execute(steps[instruction.step], instruction, inputs: UnsafeBufferPointer(rebasing: pointers[prepared.operandSlots[p]]),
                        residual: residual, output: arena + offsets[instruction.output],
                        scratch: arena + program.layout.scratchOffsets[p])
                if let mark { profile?.add(instruction.label, since: mark, flops: instruction.flops) }
            }
        }
        profile?.finishRun()

        var result: [String: Activation] = [:]
        for i in program.captured {
            let step = steps[i]
            let shape = step.node.type.concreteShape(batch: batch)
            let source = arena + offsets[i]
            if step.node.type.elementType == .i32 {
                let values = Array(UnsafeBufferPointer(start: source.assumingMemoryBound(to: Int32.self), count: shape.elementCount))
                result[step.node.name] = .indices(shape: shape, values: values)
            } else {
                let (storage, memory) = TensorStorage.allocate(byteCount: shape.elementCount * 4)
                memory.copyMemory(from: source, byteCount: shape.elementCount * 4)
                result[step.node.name] = .floats(FloatTensor(shape: shape, storage: storage,
                                                              pointer: UnsafePointer(memory.assumingMemoryBound(to: Float.self))))
            }
        }
        return result
    }

    /// Bytes of the arena for a batch size, for memory reports.
    public func arenaBytes(batch: Int) -> Int { preparedProgram(batch: batch, captured: Set(graph.outputs)).program.layout.arenaBytes }

    // MARK: planning

    private struct PlanKey: Hashable {
        var batch: Int
        var captured: Set<String>
    }

    /// A program with its arena and every instruction's operand pointers, resolved once:
    /// arena offsets and weights are fixed for the program, so a run only fills in the
    /// graph inputs' slots.
    private final class PreparedProgram {
        let program: Program
        let arena: UnsafeMutableRawPointer
        /// Each instruction's operands (`operandSlots[p]`), then its residual when fused.
        var pointers: [UnsafeRawPointer] = []
        private(set) var operandSlots: [Range<Int>] = []
        private(set) var residualSlots: [Int?] = []
        /// Slots holding a graph input (slot, input position), filled in per run.
        private(set) var inputSlots: [(slot: Int, input: Int)] = []

        init(program: Program, steps: [Step]) {
            self.program = program
            arena = UnsafeMutableRawPointer.allocate(byteCount: program.layout.arenaBytes, alignment: MemoryPlan.alignment)
            func append(_ operand: Operand) {
                switch operand {
                case .input(let position):
                    inputSlots.append((pointers.count, position))
                    pointers.append(UnsafeRawPointer(arena))
                case .constant(let pointer):
                    pointers.append(UnsafeRawPointer(pointer))
                case .node(let index):
                    pointers.append(UnsafeRawPointer(arena + program.layout.valueOffsets[index]))
                }
            }
            for instruction in program.instructions {
                let start = pointers.count
                steps[instruction.step].operands.forEach(append)
                operandSlots.append(start..<pointers.count)
                if case .residual(let operand) = instruction.fusion {
                    residualSlots.append(pointers.count)
                    append(operand)
                } else {
                    residualSlots.append(nil)
                }
            }
        }
        deinit { arena.deallocate() }
    }

    private func preparedProgram(batch: Int, captured: Set<String>) -> PreparedProgram {
        let key = PlanKey(batch: batch, captured: captured)
        if let prepared = programs[key] { return prepared }
        let prepared = PreparedProgram(program: Program(steps: steps, batch: batch, captured: captured, threads: threads,
                                                        fuse: fuse, limitRows: limitRows), steps: steps)
        programs[key] = prepared
        return prepared
    }
}

/// A node with its operands resolved.
struct Step {
    var node: Node
    var operands: [Operand]
    var inputTypes: [ValueType]
}

enum Operand {
    case input(Int)
    case constant(UnsafePointer<Float>)
    case node(Int)
}
