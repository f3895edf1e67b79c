import IR
import Importers

/// Tensor views turned into Float32 weights. A contiguous F32 view is a pointer into the
/// file's map (no copy, as safetensors); anything else (F16 / BF16 / F64, a transposed or
/// strided view) is gathered element by element into owned memory in row-major order.
enum TensorMaterializer {
    static func floatTensor(_ tensor: TensorRecord, storage: StorageRecord, map: TensorStorage) throws(CheckpointError) -> (FloatTensor, ElementType) {
        guard let source = tensor.dtype.floatSource else {
            throw CheckpointError("dtype \(tensor.dtype.rawValue) cannot be read as weights (float32, float16, bfloat16 or float64 expected)")
        }
        guard let range = storage.bytes else { throw CheckpointError("storage '\(storage.key.escapedForMessage)' has no bytes") }
        let size = tensor.dtype.size
        // TensorRebuild checked that the view lies inside the storage, and the layouts that
        // the storage lies inside the file; these are the same bytes.
        let base = map.bytes(range)
        if tensor.isContiguous {
            let start = tensor.offset * size
            let bytes = UnsafeRawBufferPointer(rebasing: base[start ..< start + tensor.elementCount * size])
            let converted = NumericConversion.floatTensor(bytes, type: source, shape: tensor.sizes, storage: map)
            // A converted copy has read the file's pages; drop them so a checkpoint of F16 or
            // unaligned F32 (the legacy layout) is resident once, as Float32, not twice.
            if converted.storage !== map { map.evict(bytes) }
            return (converted, source)
        }
        // A strided view reads each element once, so it may not have more elements than the
        // storage: a broadcast (stride 0) view would make a tiny file allocate without bound.
        guard tensor.elementCount <= storage.byteCount / size else {
            throw CheckpointError("a broadcast view of \(tensor.elementCount) elements over a storage of \(storage.byteCount / size): refused")
        }
        let (owned, memory) = TensorStorage.allocate(byteCount: tensor.elementCount * 4)
        let out = memory.bindMemory(to: Float.self, capacity: max(tensor.elementCount, 1))
        if tensor.elementCount > 0 {
            gather(from: base, type: source, tensor: tensor, into: out)
        }
        map.evict(base)
        return (FloatTensor(shape: tensor.sizes, storage: owned, pointer: UnsafePointer(out)), source)
    }

    /// Row-major walk over the view: an odometer over the outer axes, the last axis inner.
    private static func gather(from base: UnsafeRawBufferPointer, type: ElementType, tensor: TensorRecord, into out: UnsafeMutablePointer<Float>) {
        let sizes = tensor.sizes.isEmpty ? [1] : tensor.sizes
        let strides = tensor.strides.isEmpty ? [1] : tensor.strides
        let rank = sizes.count
        let inner = sizes[rank - 1], innerStride = strides[rank - 1]
        var index = [Int](repeating: 0, count: rank)
        var written = 0
        while written < tensor.elementCount {
            var element = tensor.offset
            for axis in 0..<(rank - 1) { element += index[axis] * strides[axis] }
            NumericConversion.toFloat32(from: base, type: type, count: inner, first: element, stride: innerStride, into: out + written)
            written += inner
            var axis = rank - 2
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < sizes[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
    }
}
