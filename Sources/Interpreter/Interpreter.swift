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
    /// The options ask for something this machine cannot do (an instruction set it lacks).
    case unsupported(String)
    case resources(String)

    public var description: String {
        switch self {
        case .invalidGraph(let message): return "cannot run the graph: \(message)"
        case .badInput(let message): return "bad input: \(message)"
        case .unsupported(let message): return message
        case .resources(let message): return message
        }
    }
}

/// Runs an IR graph on the CPU in Float32.
///
/// Preparation resolves every constant to a pointer once and packs the weights of the linear
/// layers into the GEMM's panel layout (`PackedWeights`). Each batch size (and set of captured
/// values) gets a `Program`, built on first use and reused: kernel order after fusion and one
/// arena with offsets by liveness, so running allocates only the captured copies. Kernels come
/// from Sources/CKernels for the instruction set the options name or the best the CPU has;
/// each splits its work across `threads` workers of one persistent pool.
public final class Interpreter: @unchecked Sendable {
    public let graph: Graph
    public let options: InterpreterOptions
    public let threads: Int
    /// The instruction set the kernels run with.
    public var isa: KernelISA { kernels.isa }
    let kernels: CPUKernels
    private let steps: [Step]
    private var programs: [PlanKey: PreparedProgram] = [:]
    private let outputNames: Set<String>
    private let profile: Profile?
    /// Owns the packed weights the steps point into (nil for the OpenBLAS engine).
    private let packedWeights: PackedWeights?
    /// Zeros standing in for the bias of a linear or token_select that has none (ViTs without
    /// qkv bias), as long as the widest such weight.
    let zeros: UnsafePointer<Float>

    public convenience init(graph: Graph, threads: Int? = nil) throws(InterpreterError) {
        try self.init(graph: graph, options: InterpreterOptions(threads: threads))
    }

    public init(graph: Graph, options: InterpreterOptions) throws(InterpreterError) {
        do {
            try GraphValidator.validate(graph)
        } catch {
            throw .invalidGraph(error.description)
        }
        let isa = options.isa ?? KernelISA.best
        guard let kernels = CPUKernels(isa) else {
            let available = KernelISA.supported.map(\.rawValue).joined(separator: ", ")
            throw .unsupported("this CPU cannot run the \(isa.rawValue) kernels (it can run: \(available))")
        }
        self.graph = graph
        self.options = options
        self.kernels = kernels
        outputNames = Set(graph.outputs)
        self.threads = max(1, min(options.threads ?? onlineCoreCount(), 64))
        // The OpenBLAS engine threads its calls itself; OpenBLAS threads on top would fight it.
        if options.matrixBackend == .openBLAS { openblas_set_num_threads(1) }
        profile = options.profile ? Profile() : nil

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
        if options.matrixBackend == .packed {
            let requests = steps.map(Interpreter.packingRequest)
            let evictable = Interpreter.packedOnlyWeights(steps: steps, requests: requests, graph: graph)
            let packed = try PackedWeights(requests.compactMap { $0 }, nr: kernels.nr, threads: self.threads) { request in
                guard let tensor = evictable[request.source] else { return }
                tensor.storage.evict(UnsafeRawBufferPointer(tensor.buffer))
            }
            for i in steps.indices { steps[i].packed = requests[i].flatMap(packed.matrix) }
            packedWeights = packed
        } else {
            packedWeights = nil
        }
        self.steps = steps
        let widest = steps.map { $0.inputTypes.count > 1 ? $0.inputTypes[1].extent(0) ?? 0 : 0 }.max() ?? 0
        let zeroMemory = UnsafeMutablePointer<Float>.allocate(capacity: max(widest, 1))
        zeroMemory.initialize(repeating: 0, count: max(widest, 1))
        zeros = UnsafePointer(zeroMemory)
    }

    /// The weights only packed products read, by address: once packed, their file pages can
    /// go (`TensorStorage.evict`; owned storage is left alone), so resident memory holds one
    /// copy of the model, not two. A weight another op reads in its original layout stays
    /// mapped (`token_select` reads the qkv weight); anything touching an evicted weight later
    /// reads it back from the page cache.
    private static func packedOnlyWeights(steps: [Step], requests: [PackedWeights.Request?],
                                          graph: Graph) -> [UnsafePointer<Float>: FloatTensor] {
        var packedOnly: [String: FloatTensor] = [:]
        var readElsewhere = Set<String>()
        for (step, request) in zip(steps, requests) {
            for (position, name) in step.node.inputs.enumerated() {
                guard let tensor = graph.constant(named: name)?.tensor else { continue }
                if position == 1, request != nil { packedOnly[name] = tensor } else { readElsewhere.insert(name) }
            }
        }
        var result: [UnsafePointer<Float>: FloatTensor] = [:]
        for (name, tensor) in packedOnly where !readElsewhere.contains(name) { result[tensor.pointer] = tensor }
        return result
    }

    /// The weight a linear layer or patch embedding multiplies by, as a matrix to pack (the
    /// rows it uses, when it takes q, k or v out of a qkv weight); nil for other steps and for
    /// weights computed by the graph.
    private static func packingRequest(_ step: Step) -> PackedWeights.Request? {
        guard step.operands.count > 1, case .constant(let pointer) = step.operands[1] else { return nil }
        let weight = step.inputTypes[1].concreteShape(batch: 1)
        switch step.node.op {
        case .linear(let linear):
            let rows = linear.rows ?? 0..<weight[0]
            return PackedWeights.Request(source: pointer, start: rows.lowerBound, rows: rows.count, k: weight[1])
        case .patchEmbed, .conv2d:
            return PackedWeights.Request(source: pointer, start: 0, rows: weight[0], k: weight.dropFirst().reduce(1, *))
        default:
            return nil
        }
    }

    deinit {
        profile?.report(kernels: kernels, threads: threads)
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
                execute(steps[instruction.step], instruction, inputs: UnsafeBufferPointer(rebasing: pointers[prepared.operandSlots[p]]),
                        fused: UnsafeBufferPointer(rebasing: pointers[prepared.fusedSlots[p]]),
                        output: arena + offsets[instruction.output],
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

    /// Bytes of the arena for a batch size, for memory reports and budgets: from the program
    /// already made for it, or from a plan made for the purpose (no arena allocated, nothing
    /// kept: the budget check plans for batch 1 before the run plans for its own batch).
    public func arenaBytes(batch: Int) -> Int {
        let key = PlanKey(batch: batch, captured: Set(graph.outputs))
        if let prepared = programs[key] { return prepared.program.layout.arenaBytes }
        return Program(steps: steps, batch: batch, captured: key.captured, settings: programSettings).layout.arenaBytes
    }

    /// The instruction labels of the program for a batch size when only the outputs are
    /// captured (or `captured`), in order: what fused into what (tests, profiles).
    func instructionLabels(batch: Int, captured: Set<String>? = nil) -> [String] {
        Program(steps: steps, batch: batch, captured: captured ?? Set(graph.outputs), settings: programSettings)
            .instructions.map(\.label)
    }

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
        /// Each instruction's operands (`operandSlots[p]`), then those its fusion brings in
        /// (`fusedSlots[p]`, in `Fusion.operands` order).
        var pointers: [UnsafeRawPointer] = []
        private(set) var operandSlots: [Range<Int>] = []
        private(set) var fusedSlots: [Range<Int>] = []
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
                let fusedStart = pointers.count
                instruction.fusion.operands.forEach(append)
                fusedSlots.append(fusedStart..<pointers.count)
            }
        }
        deinit { arena.deallocate() }
    }

    private var programSettings: Program.Settings {
        Program.Settings(threads: threads, fuse: options.fuse, rowDemand: options.rowDemand, kernels: kernels,
                         backend: options.matrixBackend)
    }

    private func preparedProgram(batch: Int, captured: Set<String>) -> PreparedProgram {
        let key = PlanKey(batch: batch, captured: captured)
        if let prepared = programs[key] { return prepared }
        let prepared = PreparedProgram(program: Program(steps: steps, batch: batch, captured: captured, settings: programSettings),
                                       steps: steps)
        programs[key] = prepared
        return prepared
    }
}

/// A node with its operands resolved.
struct Step {
    var node: Node
    var operands: [Operand]
    var inputTypes: [ValueType]
    /// The weight packed for the GEMM (linear layers and the patch embedding, packed engine).
    var packed: PackedMatrix?
}

enum Operand {
    case input(Int)
    case constant(UnsafePointer<Float>)
    case node(Int)
}
