import IR

/// What the recognised globals build, and what a persistent id refers to. Nothing here calls
/// Python: each case reads its arguments as data, checks them, and records a container, a
/// storage or a tensor view.
enum TorchCalls {
    static func call(_ known: KnownGlobal, _ arguments: [PickleValue], machine: inout PickleMachine, depth: Int = 0) throws(PickleError) -> PickleValue {
        switch known {
        case .orderedDict:
            return try orderedDict(arguments, machine: &machine)
        case .torchSize:
            guard arguments.count == 1 else { throw PickleError("torch.Size with \(arguments.count) arguments") }
            switch arguments[0] {
            case .tuple: return arguments[0]
            case .list(let l): return try machine.newTuple(machine.heap.lists[l])
            default: throw PickleError("torch.Size of \(machine.describe(arguments[0]))")
            }
        case .tensorClass(let name):
            throw PickleError("calls \(name): a checkpoint never constructs a tensor that way")
        case .rebuildTensor, .rebuildTensorV2, .rebuildTensorV3:
            return .tensor(try TensorRebuild.view(known, arguments, heap: &machine.heap))
        case .rebuildParameter, .rebuildParameterWithState:
            let name = known == .rebuildParameter ? "torch._utils._rebuild_parameter" : "torch._utils._rebuild_parameter_with_state"
            guard arguments.count == (known == .rebuildParameter ? 3 : 4) else {
                throw PickleError("\(name) with \(arguments.count) arguments")
            }
            guard case .tensor = arguments[0] else {
                throw PickleError("\(name): its data is \(machine.describe(arguments[0])), not a tensor")
            }
            return arguments[0]
        case .rebuildFromTypeV2:
            // (func, new_type, args, state): a tensor subclass or a tensor with Python state;
            // func must itself rebuild a tensor. The nesting is bounded: tuples cannot contain
            // themselves, but they can be deep.
            guard arguments.count == 4 else { throw PickleError("torch._tensor._rebuild_from_type_v2 with \(arguments.count) arguments") }
            guard case .known(let inner) = arguments[0], inner.isTensorRebuild else {
                throw PickleError("torch._tensor._rebuild_from_type_v2 rebuilds with \(machine.describe(arguments[0])), not a tensor rebuild")
            }
            guard case .tuple(let t) = arguments[2] else {
                throw PickleError("torch._tensor._rebuild_from_type_v2 with \(machine.describe(arguments[2])) as arguments")
            }
            guard depth < 4 else { throw PickleError("torch._tensor._rebuild_from_type_v2 nested more than 4 deep") }
            return try call(inner, machine.heap.tuples[t], machine: &machine, depth: depth + 1)
        }
    }

    /// `OrderedDict()` or `OrderedDict([(key, value), ...])`.
    private static func orderedDict(_ arguments: [PickleValue], machine: inout PickleMachine) throws(PickleError) -> PickleValue {
        guard arguments.count <= 1 else { throw PickleError("collections.OrderedDict with \(arguments.count) arguments") }
        var pairs: [PickleValue] = []
        if let items = arguments.first {
            let list: [PickleValue]
            switch items {
            case .list(let l): list = machine.heap.lists[l]
            case .tuple(let t): list = machine.heap.tuples[t]
            case .dict(let d): return .dict(d)
            default: throw PickleError("collections.OrderedDict of \(machine.describe(items))")
            }
            for pair in list {
                let parts: [PickleValue]
                switch pair {
                case .tuple(let t): parts = machine.heap.tuples[t]
                case .list(let l): parts = machine.heap.lists[l]
                default: throw PickleError("collections.OrderedDict item \(machine.describe(pair)) is not a pair")
                }
                guard parts.count == 2 else { throw PickleError("collections.OrderedDict item of \(parts.count) values") }
                pairs += parts
            }
        }
        try machine.account(objects: 1, items: pairs.count / 2)
        var dict = PickleDict()
        for i in stride(from: 0, to: pairs.count, by: 2) { dict.set(pairs[i], pairs[i + 1]) }
        machine.heap.dicts.append(dict)
        return .dict(machine.heap.dicts.count - 1)
    }

    /// `('storage', storage_class, key, location, numel)` (zip layout; the legacy layout adds
    /// a view_metadata that modern torch leaves None), or `('module', class, file, source)`
    /// for the classes of a pickled nn.Module in the legacy layout, which stays inert.
    static func persistentLoad(_ pid: PickleValue, heap: inout PickleHeap,
                               locate: (String, Int) throws(PickleError) -> Range<Int>?) throws(PickleError) -> PickleValue {
        guard case .tuple(let t) = pid, let kind = heap.tuples[t].first, case .string(let typename) = kind else {
            throw PickleError("persistent id \(PickleDescription.kind(pid, heap: heap)) is not a ('storage', ...) tuple")
        }
        let fields = heap.tuples[t]
        if typename == "module" {
            heap.moduleClasses.append(fields.count > 1 ? fields[1] : .none)
            return .moduleClass(heap.moduleClasses.count - 1)
        }
        guard typename == "storage" else { throw PickleError("persistent id of kind '\(typename.escapedForMessage)' (only 'storage' is known)") }
        guard fields.count == 5 || fields.count == 6 else { throw PickleError("storage persistent id of \(fields.count) fields (5 or 6 expected)") }
        guard case .storageClass(let storageClass) = fields[1] else {
            throw PickleError("storage persistent id names \(PickleDescription.kind(fields[1], heap: heap)), not a torch storage class")
        }
        let key: String
        switch fields[2] {
        case .string(let s): key = s
        case .int(let i): key = String(i)
        default: throw PickleError("storage key is \(PickleDescription.kind(fields[2], heap: heap)), not a string")
        }
        guard !key.isEmpty, key.utf8.count <= 64, !key.contains("/"), !key.contains("\\"), key != "..", key != "." else {
            throw PickleError("storage key '\(String(key.prefix(64)).escapedForMessage)' is not a plain name")
        }
        guard case .int(let count) = fields[4], count >= 0 else {
            throw PickleError("storage '\(key.escapedForMessage)' has element count \(PickleDescription.kind(fields[4], heap: heap))")
        }
        if fields.count == 6, case .none = fields[5] {} else if fields.count == 6 {
            throw PickleError("storage '\(key.escapedForMessage)' is a storage view (torch < 0.4), which idlevit does not read")
        }
        if let existing = heap.storageByKey[key] {
            // torch.save refuses to write one storage under two types, so a file that does is
            // not one of its own.
            let record = heap.storages[existing]
            guard record.storageClass == storageClass, record.elementCount == count else {
                throw PickleError("storage '\(key.escapedForMessage)' is declared twice with different types or sizes")
            }
            return .storage(existing)
        }
        let byteCount: Int
        do {
            byteCount = try Checked.multiply(count, storageClass.elementType.size, "the byte size of storage '\(key.escapedForMessage)'")
        } catch {
            throw PickleError(error.description)
        }
        guard heap.storages.count < Limits.tensorCount.maximum else { throw PickleError("more than \(Limits.tensorCount.maximum) storages") }
        let range = try locate(key, byteCount)
        heap.storages.append(StorageRecord(key: key, storageClass: storageClass, elementCount: count, byteCount: byteCount, bytes: range))
        heap.storageByKey[key] = heap.storages.count - 1
        return .storage(heap.storages.count - 1)
    }
}
