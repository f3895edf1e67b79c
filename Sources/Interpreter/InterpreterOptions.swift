/// How the interpreter runs a graph. The defaults are the fastest correct choices; the
/// switches exist to measure what each part buys and to test every kernel path. They are
/// passed in, never read from the environment inside the interpreter (the command line maps
/// `IDLEVIT_*` variables and hidden flags onto them).
public struct InterpreterOptions: Sendable, Equatable {
    /// Worker threads; nil means every online core. Clamped to 1...64.
    public var threads: Int?
    /// Instruction set of the kernels; nil picks the best the CPU supports. Asking for one the
    /// CPU lacks is an error, never an illegal instruction.
    public var isa: KernelISA?
    /// What computes the matrix products and attention.
    public var matrixBackend: MatrixBackend
    /// Fuse each linear layer with what follows it (GELU, LayerScale, residual add) and with
    /// the LayerNorm before it, where the intermediate values are not captured.
    public var fuse: Bool
    /// Compute only the token rows the requested outputs need (`RowDemand`).
    public var rowDemand: Bool
    /// Time every kernel kind; the table (with GFLOP/s and % of the measured FMA peak) goes to
    /// stderr when the interpreter is released.
    public var profile: Bool

    public init(threads: Int? = nil, isa: KernelISA? = nil, matrixBackend: MatrixBackend = .packed, fuse: Bool = true,
                rowDemand: Bool = true, profile: Bool = false) {
        self.threads = threads
        self.isa = isa
        self.matrixBackend = matrixBackend
        self.fuse = fuse
        self.rowDemand = rowDemand
        self.profile = profile
    }
}

public enum MatrixBackend: String, CaseIterable, Sendable {
    /// idlevit's own kernels (Sources/CKernels): weights packed once at load, epilogues in
    /// registers, fused attention.
    case packed
    /// OpenBLAS sgemm per call on the weights as mapped, with the epilogues as separate
    /// passes over each thread's tile; attention as two sgemm calls per head. Kept to measure
    /// against.
    case openBLAS = "openblas"
}
