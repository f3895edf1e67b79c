import CKernels

/// The instruction set the interpreter's kernels run with (Sources/CKernels: one binary holds
/// all three, picked at run time).
public enum KernelISA: String, CaseIterable, Sendable {
    /// AVX-512F: 12 x 32 GEMM tiles.
    case avx512
    /// AVX2 + FMA: 6 x 16 tiles.
    case avx2
    /// The compiler's generic 4-lane vectors (SSE2 on the x86-64 baseline): any CPU.
    case portable

    var code: Int32 {
        switch self {
        case .avx512: return Int32(IDV_ISA_AVX512.rawValue)
        case .avx2: return Int32(IDV_ISA_AVX2.rawValue)
        case .portable: return Int32(IDV_ISA_PORTABLE.rawValue)
        }
    }

    /// Whether this build has the kernels and this CPU and OS can run them (CPUID, XGETBV).
    public var isSupported: Bool { idv_kernels(code) != nil && idv_isa_supported(code) != 0 }

    /// The best instruction set this machine supports.
    public static var best: KernelISA { [.avx512, .avx2].first { $0.isSupported } ?? .portable }

    /// Every instruction set this machine supports, best first.
    public static var supported: [KernelISA] { allCases.filter(\.isSupported) }
}

/// One instruction set's kernel table: GEMM over packed panels, fused attention, GELU,
/// LayerNorm and the FMA peak loop.
struct CPUKernels: @unchecked Sendable {
    let isa: KernelISA
    let table: UnsafePointer<IdvKernels>
    /// The instruction set, or what the table stands in for.
    let name: String

    /// Nil when the machine cannot run `isa`.
    init?(_ isa: KernelISA) {
        guard isa.isSupported, let table = idv_kernels(isa.code) else { return nil }
        self.isa = isa
        self.table = table
        name = isa.rawValue
    }

    private init(isa: KernelISA, table: UnsafePointer<IdvKernels>, name: String) {
        (self.isa, self.table, self.name) = (isa, table, name)
    }

    /// The best instruction set's table (portable runs everywhere; every build has its table).
    static var best: CPUKernels {
        CPUKernels(KernelISA.best) ?? CPUKernels(isa: .portable, table: idv_kernels(KernelISA.portable.code)!, name: "portable")
    }

    /// Tests only: the AVX-512 kernels' geometry (16 lanes, 12 x 32 tiles and the blocking
    /// that follows from them) in generic vectors, which any CPU runs. On a machine without
    /// AVX-512 it covers everything of the AVX-512 kernels but their intrinsics.
    static let avx512Geometry = CPUKernels(isa: .avx512, table: idv_kernels(Int32(IDV_ISA_AVX512_GEOMETRY.rawValue))!,
                                           name: "avx512-geometry")

    /// Microkernel tile rows, and columns = the panel width weights are packed in.
    var mr: Int { table.pointee.mr }
    var nr: Int { table.pointee.nr }
}
