import CBLAS
import IR

/// The interpreter's matrix kernels on synthetic operands, for Benchmarks/KernelBench: the
/// same calls the interpreter makes (packed GEMM with its partition, or the OpenBLAS engine's
/// per-thread sgemm calls; fused or OpenBLAS attention), timed in isolation. Not used when
/// running models.
public final class KernelBenchmark {
    public enum Epilogue: String, Sendable {
        case bias
        case gelu
        case residual
    }

    /// One product `[rows, k] x [n, k]^T` with its operands allocated once.
    public final class Linear {
        public let rows: Int, inFeatures: Int, outFeatures: Int
        public let epilogue: Epilogue
        private let x: UnsafeMutablePointer<Float>
        /// Copies of the weight, used in turn (one, or enough that each call's weight has left
        /// the caches since its last use, as in a model run: `coldBytes`).
        private let weights: [UnsafeMutablePointer<Float>]
        private var next = 0
        private let b: UnsafeMutablePointer<Float>
        private let y: UnsafeMutablePointer<Float>
        /// Per ISA, made on the first call so that timed calls only run the kernel (CPUID, which
        /// `CPUKernels` executes, is slow under a hypervisor).
        private var prepared: [KernelISA: (kernels: CPUKernels, weights: [PackedMatrix], storage: [PackedWeights])] = [:]

        /// `coldBytes`: when positive, as many copies of the weight as fill that many bytes
        /// (past the last-level cache), so that each call reads its weight from memory.
        public init(rows: Int, inFeatures: Int, outFeatures: Int, epilogue: Epilogue = .bias, coldBytes: Int = 0) {
            (self.rows, self.inFeatures, self.outFeatures, self.epilogue) = (rows, inFeatures, outFeatures, epilogue)
            // As the interpreter's OpenBLAS engine runs it: our threads, single-threaded calls.
            openblas_set_num_threads(1)
            x = KernelBenchmark.random(rows * inFeatures, seed: 1)
            let copies = max(1, coldBytes / max(1, 4 * outFeatures * inFeatures) + (coldBytes > 0 ? 1 : 0))
            weights = (0..<copies).map { _ in KernelBenchmark.random(outFeatures * inFeatures, seed: 2, scale: 0.05) }
            b = KernelBenchmark.random(outFeatures, seed: 3)
            y = KernelBenchmark.random(rows * outFeatures, seed: 4)
        }

        deinit { ([x, b, y] + weights).forEach { $0.deallocate() } }

        public var flops: Double { 2 * Double(rows) * Double(inFeatures) * Double(outFeatures) }

        /// One call with the packed kernels of `isa` (nil: OpenBLAS) on `threads` threads.
        public func run(isa: KernelISA?, threads: Int) throws {
            let epilogue = LinearEpilogue(gelu: self.epilogue == .gelu, residual: self.epilogue == .residual ? UnsafePointer(y) : nil)
            let copy = next
            next = (next + 1) % weights.count
            guard let isa else {
                BLASLinearKernel.run(x: x, rows: rows, inFeatures: inFeatures, weight: weights[copy], bias: b, outFeatures: outFeatures,
                                     epilogue: epilogue, y: y, threads: threads)
                return
            }
            if prepared[isa] == nil {
                let kernels = try KernelBenchmark.kernels(isa)
                var packed: [PackedMatrix] = [], storage: [PackedWeights] = []
                for w in weights {
                    let key = PackedWeights.Request(source: w, start: 0, rows: outFeatures, k: inFeatures)
                    let store = try PackedWeights([key], nr: kernels.nr, threads: threads)
                    guard let weight = store.matrix(key) else { throw InterpreterError.unsupported("the weight was not packed") }
                    packed.append(weight)
                    storage.append(store)
                }
                prepared[isa] = (kernels, packed, storage)
            }
            let (kernels, packed, _) = prepared[isa]!
            LinearKernel.run(kernels: kernels, x: x, rows: rows, weight: packed[copy], bias: b, epilogue: epilogue, y: y, threads: threads)
        }
    }

    /// Multi-head attention over a fused qkv `[batch, tokens, 3 heads d]`.
    public final class Attention {
        public let batch: Int, tokens: Int, heads: Int, headDimension: Int
        private let qkv: UnsafeMutablePointer<Float>
        private let y: UnsafeMutablePointer<Float>
        private let scratch: UnsafeMutablePointer<Float>
        /// Per ISA, made on the first call (see `Linear`).
        private var kernels: [KernelISA: CPUKernels] = [:]

        public init(batch: Int, tokens: Int, heads: Int, headDimension: Int = 64) {
            (self.batch, self.tokens, self.heads, self.headDimension) = (batch, tokens, heads, headDimension)
            openblas_set_num_threads(1)
            qkv = KernelBenchmark.random(batch * tokens * 3 * heads * headDimension, seed: 5)
            y = KernelBenchmark.random(batch * tokens * heads * headDimension, seed: 6)
            // Room for either engine's scratch on up to 64 threads.
            let widest = KernelISA.supported.compactMap(CPUKernels.init).map {
                AttentionKernel.scratchFloats(kernels: $0, tokens: tokens, headDimension: headDimension, threads: 64)
            }.max() ?? 0
            let count = max(widest, BLASAttentionKernel.scratchFloats(tokens: tokens, threads: 64))
            scratch = .allocate(capacity: count)
            scratch.initialize(repeating: 0, count: count)
        }

        deinit { [qkv, y, scratch].forEach { $0.deallocate() } }

        /// `Q K^T` and `P V`.
        public var flops: Double { 4 * Double(batch) * Double(tokens * tokens) * Double(heads * headDimension) }

        public func run(isa: KernelISA?, threads: Int) throws {
            let channels = heads * headDimension
            guard let isa else {
                BLASAttentionKernel.run(q: qkv, k: qkv + channels, v: qkv + 2 * channels, rowStride: 3 * channels, batch: batch,
                                        tokens: tokens, channels: channels, heads: heads, scratch: scratch, y: y, threads: threads,
                                        queries: tokens)
                return
            }
            if kernels[isa] == nil { kernels[isa] = try KernelBenchmark.kernels(isa) }
            AttentionKernel.run(kernels: kernels[isa]!, q: qkv, k: qkv + channels, v: qkv + 2 * channels, rowStride: 3 * channels,
                                batch: batch, tokens: tokens, channels: channels, heads: heads, scratch: scratch, y: y,
                                threads: threads, queries: tokens)
        }
    }

    static func kernels(_ isa: KernelISA) throws -> CPUKernels {
        guard let kernels = CPUKernels(isa) else { throw InterpreterError.unsupported("this CPU cannot run the \(isa.rawValue) kernels") }
        return kernels
    }

    /// Seconds per call of `body`: calls repeated for about `seconds` after one warm-up call.
    public static func time(seconds: Double, _ body: () throws -> Void) rethrows -> Double {
        try body()
        var calls = 0
        let start = Timing.monotonic
        var elapsed = 0.0
        repeat {
            try body()
            calls += 1
            elapsed = Timing.monotonic - start
        } while elapsed < seconds
        return elapsed / Double(calls)
    }

    static func random(_ count: Int, seed: UInt64, scale: Float = 1) -> UnsafeMutablePointer<Float> {
        let memory = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        var state = seed &* 0x9E37_79B9_7F4A_7C15
        for i in 0..<count {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            memory[i] = (Float(state >> 40) / Float(1 << 24) - 0.5) * 2 * scale
        }
        return memory
    }
}
