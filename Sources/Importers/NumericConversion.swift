import IR

/// Conversions between the stored float formats and Float32.
public enum NumericConversion {
    /// `bytes` of `type` as a Float32 tensor: a view into `storage` (no copy) when they already
    /// are aligned Float32 and live there, else an owned converted copy.
    public static func floatTensor(_ bytes: UnsafeRawBufferPointer, type: ElementType, shape: [Int], storage: TensorStorage?) -> FloatTensor {
        if type == .f32, let storage, let base = bytes.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
            return FloatTensor(shape: shape, storage: storage, pointer: base.assumingMemoryBound(to: Float.self))
        }
        let count = shape.elementCount
        let (owned, memory) = TensorStorage.allocate(byteCount: count * 4)
        let out = memory.bindMemory(to: Float.self, capacity: max(count, 1))
        if count > 0 { toFloat32(from: bytes, type: type, count: count, into: out) }
        return FloatTensor(shape: shape, storage: owned, pointer: UnsafePointer(out))
    }

    /// `count` elements of `type` from `bytes` as Float32 into `out`: elements `first`,
    /// `first + stride`, ... (a strided view's row); one memcpy for contiguous Float32.
    public static func toFloat32(from bytes: UnsafeRawBufferPointer, type: ElementType, count: Int, first: Int = 0, stride: Int = 1,
                                 into out: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32:
            if stride == 1 {
                if count > 0 { UnsafeMutableRawPointer(out).copyMemory(from: bytes.baseAddress! + first * 4, byteCount: count * 4) }
            } else {
                for i in 0..<count { out[i] = bytes.loadUnaligned(fromByteOffset: (first + i * stride) * 4, as: Float.self) }
            }
        case .f16:
            for i in 0..<count { out[i] = Float(Float16(bitPattern: bytes.loadUnaligned(fromByteOffset: (first + i * stride) * 2, as: UInt16.self))) }
        case .bf16:
            for i in 0..<count {
                out[i] = Float(bitPattern: UInt32(bytes.loadUnaligned(fromByteOffset: (first + i * stride) * 2, as: UInt16.self)) << 16)
            }
        case .f64:
            for i in 0..<count { out[i] = Float(bytes.loadUnaligned(fromByteOffset: (first + i * stride) * 8, as: Double.self)) }
        case .i64, .i32:
            preconditionFailure("integer tensors are not converted to floats")
        }
    }

    /// Float32 to bfloat16 with round-to-nearest-even, as PyTorch rounds.
    public static func bfloat16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x40 }
        let rounding = UInt32(0x7FFF) + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }
}
