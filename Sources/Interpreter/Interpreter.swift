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
/// Preparation resolves every constant to a pointer once. Each batch size gets a memory plan
/// (one arena, offsets by liveness) built on first use and reused; running then allocates
/// only the captured copies. Matrix products go through OpenBLAS; row-wise kernels split
/// across `threads` workers.
public final class Interpreter: @unchecked Sendable {
    public let graph: Graph
    public let threads: Int
    private let steps: [Step]
    private var plans: [PlanKey: PreparedPlan] = [:]

    public init(graph: Graph, threads: Int? = nil) throws(InterpreterError) {
        do {
            try GraphValidator.validate(graph)
        } catch {
            throw .invalidGraph(error.description)
        }
        self.graph = graph
        let available = Interpreter.availableCores()
        self.threads = max(1, min(threads ?? available, 64))
        openblas_set_num_threads(Int32(self.threads))

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
        self.steps = steps
    }

    static func availableCores() -> Int {
        onlineCoreCount()
    }

    /// Runs the graph on `inputs` (by input name; the first input's leading extent is the batch).
    public func run(_ inputs: [String: FloatTensor], capture: Capture = .outputs) throws(InterpreterError) -> [String: Activation] {
        var inputPointers: [UnsafePointer<Float>] = []
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
            inputPointers.append(tensor.pointer)
        }
        let captured: Set<String>
        switch capture {
        case .outputs: captured = Set(graph.outputs)
        case .all: captured = Set(graph.nodes.map(\.name))
        case .names(let names): captured = names.union(graph.outputs)
        }
        let plan = preparedPlan(batch: batch, captured: captured)
        let arena = plan.arena

        for (i, step) in steps.enumerated() {
            let pointers: [UnsafeRawPointer] = step.operands.map { operand in
                switch operand {
                case .input(let position): return UnsafeRawPointer(inputPointers[position])
                case .constant(let pointer): return UnsafeRawPointer(pointer)
                case .node(let index): return UnsafeRawPointer(arena + plan.layout.valueOffsets[index])
                }
            }
            execute(step, inputs: pointers, output: arena + plan.layout.valueOffsets[i],
                    scratch: arena + plan.layout.scratchOffsets[i], batch: batch)
        }

        var result: [String: Activation] = [:]
        for (i, step) in steps.enumerated() where captured.contains(step.node.name) {
            let shape = step.node.type.concreteShape(batch: batch)
            let source = arena + plan.layout.valueOffsets[i]
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
    public func arenaBytes(batch: Int) -> Int { preparedPlan(batch: batch, captured: Set(graph.outputs)).layout.arenaBytes }

    // MARK: planning

    private struct PlanKey: Hashable {
        var batch: Int
        var captured: Set<String>
    }

    private final class PreparedPlan {
        let layout: MemoryPlan
        let arena: UnsafeMutableRawPointer
        init(layout: MemoryPlan) {
            self.layout = layout
            arena = UnsafeMutableRawPointer.allocate(byteCount: layout.arenaBytes, alignment: MemoryPlan.alignment)
        }
        deinit { arena.deallocate() }
    }

    private func preparedPlan(batch: Int, captured: Set<String>) -> PreparedPlan {
        let key = PlanKey(batch: batch, captured: captured)
        if let plan = plans[key] { return plan }
        var lastUse = [Int](repeating: -1, count: steps.count)
        for (i, step) in steps.enumerated() {
            for case .node(let index) in step.operands { lastUse[index] = i }
        }
        for (i, step) in steps.enumerated() where captured.contains(step.node.name) || lastUse[i] < 0 {
            lastUse[i] = Int.max
        }
        let sizes = steps.map { $0.node.type.elementCount(batch: batch) * 4 }
        let scratch = steps.map { scratchBytes($0, batch: batch) }
        let plan = PreparedPlan(layout: MemoryPlan.make(sizes: sizes, scratch: scratch, lastUse: lastUse))
        plans[key] = plan
        return plan
    }

    private func scratchBytes(_ step: Step, batch: Int) -> Int {
        switch step.node.op {
        case .patchEmbed:
            let image = step.inputTypes[0].concreteShape(batch: batch)
            return 4 * PatchEmbedKernel.scratchFloats(channels: image[1], height: image[2], width: image[3],
                                                      patch: step.node.attributes.int("patch")!)
        case .attention:
            return 4 * AttentionKernel.scratchFloats(tokens: step.node.type.extent(1)!, threads: threads)
        case .tokenSelect:
            return 8 * TokenSelectKernel.scratchDoubles(channels: step.inputTypes[0].extent(2)!)
        default:
            return 0
        }
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
