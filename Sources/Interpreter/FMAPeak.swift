#if canImport(Glibc)
import Glibc
#endif
import IR

/// This machine's fused multiply-add peak as the kernels' instruction set can reach it: a
/// loop of independent FMA chains (enough to fill every FMA pipe, no memory traffic), timed on
/// one thread and on several at once. It is what `IDLEVIT_PROFILE` and the kernel benchmark
/// quote percentages of. The same timing runs the GEMM's microkernel over operands in L1
/// (`.microkernel`): how much of that peak the inner loop itself can reach. On a shared host
/// the figures move with what the neighbours run; measure them next to the thing they are
/// compared with.
public enum FMAPeak {
    public struct Measurement: Sendable {
        public var isa: KernelISA
        public var threads: Int
        /// Floating-point operations per second over all `threads` (an FMA counts two).
        public var flopsPerSecond: Double
    }

    /// What is timed: the FMA chains, or the GEMM's microkernel over operands in L1.
    public enum Loop: Sendable {
        case fmaChains
        case microkernel
    }

    /// Runs `loop` on `threads` threads for about `seconds` and returns the rate; nil when the
    /// machine cannot run `isa`.
    public static func measure(isa: KernelISA, threads: Int, seconds: Double = 0.05, loop: Loop = .fmaChains) -> Measurement? {
        guard let kernels = CPUKernels(isa) else { return nil }
        return measure(kernels, threads: threads, seconds: seconds, loop: loop)
    }

    static func measure(_ kernels: CPUKernels, threads: Int, seconds: Double, loop: Loop = .fmaChains) -> Measurement {
        let table = kernels.table
        let iterations: Int
        let run: (Int) -> Float
        let flopsPerIteration: Int
        switch loop {
        case .fmaChains:
            (iterations, run, flopsPerIteration) = (100_000, { table.pointee.fma_loop($0) }, table.pointee.peak_flops_per_iteration)
        case .microkernel:
            (iterations, run, flopsPerIteration) = (4_000, { table.pointee.tile_loop($0) }, table.pointee.tile_flops_per_iteration)
        }
        let perTask = Double(iterations) * Double(flopsPerIteration)
        // Calibrate on one thread, then run many short tasks so that a thread the OS delays
        // leaves its share to the others instead of stretching the wall time.
        var start = Timing.monotonic
        _ = run(iterations)
        let one = max(Timing.monotonic - start, 1e-6)
        let tasks = max(threads, Int(seconds / one) * threads)
        start = Timing.monotonic
        parallelTasks(tasks, threads: threads) { _, _ in _ = run(iterations) }
        let wall = max(Timing.monotonic - start, 1e-9)
        return Measurement(isa: kernels.isa, threads: threads, flopsPerSecond: Double(tasks) * perTask / wall)
    }
}
