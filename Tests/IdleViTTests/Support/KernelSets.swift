@testable import Interpreter

extension CPUKernels {
    /// The kernels of every instruction set this CPU runs (the portable ones always among
    /// them), and the AVX-512 geometry in generic vectors where the CPU has no AVX-512 (the
    /// same template with VL = 16, MR = 12, NR = 32): what the kernel tests run on.
    static var underTest: [CPUKernels] {
        var sets = KernelISA.supported.compactMap(CPUKernels.init)
        if !KernelISA.avx512.isSupported { sets.append(.avx512Geometry) }
        return sets
    }
}
