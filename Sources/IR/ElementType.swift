/// Element types. The IR computes in `f32` and carries token indices as `i32`; the
/// other cases describe what a checkpoint stored, so `inspect` and bundles can say it.
public enum ElementType: String, Sendable, Codable, CaseIterable {
    case f32, f16, bf16, f64, i64, i32

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16: return 2
        case .f64, .i64: return 8
        }
    }

    /// The safetensors spelling (`F32`, `BF16`, ...).
    public var safetensorsName: String { rawValue.uppercased() }

    public init?(safetensorsName: String) {
        self.init(rawValue: safetensorsName.lowercased())
    }
}
