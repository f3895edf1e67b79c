import IR

/// `_rebuild_tensor(storage, offset, size, stride)`, `_rebuild_tensor_v2(..., requires_grad,
/// backward_hooks[, metadata])` and `_rebuild_tensor_v3(..., dtype[, metadata])` read as
/// data: a view of a storage, checked to lie inside it before anything is read.
enum TensorRebuild {
    static func view(_ function: KnownGlobal, _ arguments: [PickleValue], heap: inout PickleHeap) throws(PickleError) -> Int {
        let name: String
        let counts: ClosedRange<Int>
        switch function {
        case .rebuildTensor: (name, counts) = ("torch._utils._rebuild_tensor", 4...4)
        case .rebuildTensorV2: (name, counts) = ("torch._utils._rebuild_tensor_v2", 6...7)
        default: (name, counts) = ("torch._utils._rebuild_tensor_v3", 7...8)
        }
        guard counts.contains(arguments.count) else {
            throw PickleError("\(name) with \(arguments.count) arguments (\(counts.lowerBound == counts.upperBound ? "\(counts.lowerBound)" : "\(counts.lowerBound) or \(counts.upperBound)") expected)")
        }
        guard case .storage(let storageIndex) = arguments[0] else {
            throw PickleError("\(name): its storage is \(PickleDescription.kind(arguments[0], heap: heap)), not a storage")
        }
        let storage = heap.storages[storageIndex]
        let dtype: TorchDType
        if function == .rebuildTensorV3 {
            guard case .dtype(let named) = arguments[6] else {
                throw PickleError("\(name): its dtype is \(PickleDescription.kind(arguments[6], heap: heap)), not a torch dtype")
            }
            dtype = named
        } else {
            guard case .typed(let typed) = storage.storageClass else {
                throw PickleError("\(name) over an untyped storage, which needs _rebuild_tensor_v3's dtype")
            }
            dtype = typed
        }
        guard case .int(let offset) = arguments[1], offset >= 0 else {
            throw PickleError("\(name): storage offset \(PickleDescription.kind(arguments[1], heap: heap)) is not a non-negative integer")
        }
        let sizes = try integers(arguments[2], what: "size", of: name, heap: heap)
        let strides = try integers(arguments[3], what: "stride", of: name, heap: heap)
        guard sizes.count == strides.count else {
            throw PickleError("\(name): \(sizes.count) sizes but \(strides.count) strides")
        }
        guard Limits.rank.contains(sizes.count) else {
            throw PickleError("\(name): rank \(sizes.count), over the limit of \(Limits.rank.maximum)")
        }
        let count: Int
        let needed: Int
        do {
            count = try Checked.elementCount(sizes, "the element count of a tensor")
            try Limits.elementCount.check(count, "the element count of a tensor")
            // The last element the view reaches, in elements of dtype from the storage's start.
            var last = offset
            for (size, stride) in zip(sizes, strides) where size > 0 {
                last = try Checked.add(last, try Checked.multiply(size - 1, stride, "a tensor's extent"), "a tensor's extent")
            }
            needed = count == 0 ? 0 : try Checked.multiply(try Checked.add(last, 1, "a tensor's extent"), dtype.size, "a tensor's extent")
        } catch {
            throw PickleError("\(name): \(error.description)")
        }
        guard needed <= storage.byteCount else {
            throw PickleError("a tensor view (offset \(offset), size \(sizes), stride \(strides), \(dtype.rawValue)) needs \(needed) bytes of storage '\(storage.key.escapedForMessage)', which has \(storage.byteCount)")
        }
        guard heap.tensors.count < Limits.tensorCount.maximum else { throw PickleError("more than \(Limits.tensorCount.maximum) tensors") }
        heap.tensors.append(TensorRecord(storage: storageIndex, dtype: dtype, offset: offset, sizes: sizes, strides: strides, elementCount: count))
        return heap.tensors.count - 1
    }

    /// A tuple (or list) of non-negative integers: a tensor's size or stride.
    private static func integers(_ value: PickleValue, what: String, of name: String, heap: PickleHeap) throws(PickleError) -> [Int] {
        let items: [PickleValue]
        switch value {
        case .tuple(let t): items = heap.tuples[t]
        case .list(let l): items = heap.lists[l]
        default: throw PickleError("\(name): its \(what) is \(PickleDescription.kind(value, heap: heap)), not a tuple")
        }
        guard items.count <= Limits.rank.maximum else {
            throw PickleError("\(name): rank \(items.count), over the limit of \(Limits.rank.maximum)")
        }
        var result: [Int] = []
        for item in items {
            guard case .int(let n) = item, n >= 0 else {
                throw PickleError("\(name): its \(what) holds \(PickleDescription.kind(item, heap: heap)), not a non-negative integer")
            }
            result.append(n)
        }
        return result
    }
}
