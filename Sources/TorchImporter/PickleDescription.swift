import IR

/// Pickled values as text: a short kind for error messages, and a bounded Python-like repr
/// for `inspect`. Both walk at most `TorchLimits.walkDepth` levels and a few items per
/// container, so shared or cyclic structures cost a bounded amount to show.
enum PickleDescription {
    /// "the global posix.system", "a call of logging.FileHandler (not run)", "a tuple of 3".
    static func kind(_ value: PickleValue, heap: PickleHeap) -> String {
        switch value {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return "the integer \(i)"
        case .bigInt(let bytes): return "a \(bytes.count)-byte integer"
        case .float(let d): return "the float \(d)"
        case .string(let s): return "the string \(quoted(s, limit: 40))"
        case .bytes(let b): return "\(b.count) bytes"
        case .global(let i): return "the global \(global(heap.globals[i]))"
        case .known(let k): return name(of: k)
        case .dtype(let d): return "torch.\(d.rawValue)"
        case .storageClass(let c): return c == .untyped ? "torch.UntypedStorage" : "a \(c) class"
        case .tuple(let t): return "a tuple of \(heap.tuples[t].count)"
        case .list(let l): return "a list of \(heap.lists[l].count)"
        case .dict(let d): return "a dict of \(heap.dicts[d].count)"
        case .set(let s): return "a set of \(heap.sets[s].count)"
        case .object(let o):
            if let name = heap.globalName(of: value) { return "a call of \(global(name)) (\(heap.objects[o].via), not run)" }
            return "a call of \(kind(heap.objects[o].callee, heap: heap)) (not run)"
        case .storage(let s): return "storage '\(heap.storages[s].key.escapedForMessage)'"
        case .tensor: return "a tensor"
        case .moduleClass: return "a module class"
        }
    }

    static func global(_ g: PythonGlobal) -> String {
        g.description.escapedForMessage
    }

    static func name(of known: KnownGlobal) -> String {
        switch known {
        case .orderedDict: return "collections.OrderedDict"
        case .rebuildTensor: return "torch._utils._rebuild_tensor"
        case .rebuildTensorV2: return "torch._utils._rebuild_tensor_v2"
        case .rebuildTensorV3: return "torch._utils._rebuild_tensor_v3"
        case .rebuildParameter: return "torch._utils._rebuild_parameter"
        case .rebuildParameterWithState: return "torch._utils._rebuild_parameter_with_state"
        case .rebuildFromTypeV2: return "torch._tensor._rebuild_from_type_v2"
        case .torchSize: return "torch.Size"
        case .tensorClass(let name): return name
        }
    }

    /// Python's repr of a string, escaped for a one-line message, cut at `limit` characters.
    static func quoted(_ s: String, limit: Int = 80) -> String {
        let cut = s.count > limit ? String(s.prefix(limit)) + "..." : s
        return "'" + cut.escapedForMessage.replacingAll("'", with: "\\'") + "'"
    }

    /// A Python-like repr, bounded in depth and in items per container.
    static func repr(_ value: PickleValue, heap: PickleHeap, depth: Int = 0, tensors: (Int) -> String) -> String {
        let itemsShown = 6
        func items(_ values: [PickleValue]) -> String {
            var parts = values.prefix(itemsShown).map { repr($0, heap: heap, depth: depth + 1, tensors: tensors) }
            if values.count > itemsShown { parts.append("... \(values.count - itemsShown) more") }
            return parts.joined(separator: ", ")
        }
        let deep = depth >= 3
        switch value {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .float(let d): return d.isFinite && d == d.rounded() && abs(d) < 1e16 ? String(format1: d) : "\(d)"
        case .string(let s): return quoted(s)
        case .tensor(let t): return tensors(t)
        case .tuple(let t):
            if deep { return "(...)" }
            let inner = items(heap.tuples[t])
            return heap.tuples[t].count == 1 ? "(\(inner),)" : "(\(inner))"
        case .list(let l): return deep ? "[...]" : "[\(items(heap.lists[l]))]"
        case .set(let s): return deep ? "{...}" : "{\(items(heap.sets[s]))}"
        case .dict(let d):
            if deep { return "{...}" }
            let dict = heap.dicts[d]
            var parts = zip(dict.keys, dict.values).prefix(itemsShown).map {
                "\(repr($0.0, heap: heap, depth: depth + 1, tensors: tensors)): \(repr($0.1, heap: heap, depth: depth + 1, tensors: tensors))"
            }
            if dict.count > itemsShown { parts.append("... \(dict.count - itemsShown) more") }
            return "{\(parts.joined(separator: ", "))}"
        case .object(let o):
            let object = heap.objects[o]
            let callee = heap.globalName(of: value).map(global) ?? kind(object.callee, heap: heap)
            if deep { return "\(callee)(...)" }
            if let (fields, total) = fields(of: value, heap: heap, limit: itemsShown) {
                var parts = fields.map { "\($0.0)=\(repr($0.1, heap: heap, depth: depth + 1, tensors: tensors))" }
                if total > itemsShown { parts.append("... \(total - itemsShown) more") }
                return "\(callee)(\(parts.joined(separator: ", ")))"
            }
            if case .tuple(let t) = object.arguments { return "\(callee)(\(items(heap.tuples[t])))" }
            return "\(callee)(...)"
        default:
            return kind(value, heap: heap)
        }
    }

    /// The attributes an object's BUILD state sets (`argparse.Namespace(lr=0.001, ...)`):
    /// the first `limit` of a dict with string keys and the dict's size, or nil.
    static func fields(of value: PickleValue, heap: PickleHeap, limit: Int = .max) -> (fields: [(String, PickleValue)], total: Int)? {
        guard case .object(let o) = value, let state = heap.objects[o].state else { return nil }
        var dictIndex: Int?
        switch state {
        case .dict(let d): dictIndex = d
        case .tuple(let t):
            // (state, slotstate): either may hold the attributes.
            for part in heap.tuples[t] { if case .dict(let d) = part { dictIndex = d; break } }
        default: break
        }
        guard let d = dictIndex else { return nil }
        let dict = heap.dicts[d]
        var result: [(String, PickleValue)] = []
        for (key, value) in zip(dict.keys, dict.values).prefix(limit) {
            guard case .string(let name) = key else { return nil }
            result.append((name.escapedForMessage, value))
        }
        return (result, dict.count)
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }

    /// "3" for 3.0, as Python prints whole floats ("3.0").
    init(format1 value: Double) {
        self = String(Int(value)) + ".0"
    }
}
