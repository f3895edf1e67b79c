import IR

/// A dict in the checkpoint that holds a model's tensors, and where it is.
struct StateDictCandidate: Sendable {
    /// Keys from the top-level object down ("model", "state_dict.model"); empty for the file
    /// being a state dict itself.
    var path: [String]
    var dict: Int
    var tensorCount: Int

    var name: String { path.isEmpty ? "(top level)" : path.joined(separator: ".") }
}

/// Finds the state dicts in a checkpoint and picks the one to load: a plain state dict,
/// `{"model": sd}` (Facebook DeiT), `{"state_dict": sd}`, `{"model_ema": sd}`, a training
/// checkpoint with optimizer state and args beside the model. One candidate is taken; with
/// several, `--key` names one and the error lists them.
enum StateDictSelection {
    /// A state dict: string keys only, at least one tensor, and every value a tensor or a
    /// call of something unrecognised (so a swapped tensor rebuild is reported by name when
    /// the dict is loaded, rather than hiding the dict).
    static func isStateDict(_ dict: PickleDict, heap: PickleHeap) -> Int? {
        var tensors = 0
        for (key, value) in zip(dict.keys, dict.values) {
            guard case .string = key else { return nil }
            switch value {
            case .tensor: tensors += 1
            case .object: continue
            default: return nil
            }
        }
        return tensors > 0 ? tensors : nil
    }

    /// Every state dict reachable through string-keyed dicts, breadth first, each dict
    /// visited once and at most `TorchLimits.walkDepth` levels down.
    static func candidates(_ root: PickleValue, heap: PickleHeap) -> [StateDictCandidate] {
        guard case .dict(let rootIndex) = root else { return [] }
        var found: [StateDictCandidate] = []
        var visited: Set<Int> = [rootIndex]
        var level: [(path: [String], dict: Int)] = [([], rootIndex)]
        for _ in 0...TorchLimits.walkDepth where !level.isEmpty {
            var next: [(path: [String], dict: Int)] = []
            for (path, index) in level {
                let dict = heap.dicts[index]
                if let count = isStateDict(dict, heap: heap) {
                    found.append(StateDictCandidate(path: path, dict: index, tensorCount: count))
                    continue
                }
                for (key, value) in zip(dict.keys, dict.values) {
                    guard case .string(let name) = key, case .dict(let child) = value, visited.insert(child).inserted else { continue }
                    next.append((path + [name], child))
                }
            }
            level = next
        }
        return found
    }

    static func select(_ root: PickleValue, heap: PickleHeap, key: String?) throws(CheckpointError) -> (chosen: StateDictCandidate, all: [StateDictCandidate]) {
        let all = candidates(root, heap: heap)
        let listed = all.map { "'\($0.name.escapedForMessage)' (\($0.tensorCount) tensor\($0.tensorCount == 1 ? "" : "s"))" }.joined(separator: ", ")
        if let key {
            if let match = all.first(where: { $0.name == key }) { return (match, all) }
            if all.count == 1, all[0].path.isEmpty {
                throw CheckpointError("--key '\(key.escapedForMessage)': the file is a plain state dict, there is no key to choose")
            }
            if case .dict(let d) = root, let value = heap.dicts[d].value(forString: key) {
                throw CheckpointError("--key '\(key.escapedForMessage)' is \(PickleDescription.kind(value, heap: heap)), not a state dict; state dicts: \(all.isEmpty ? "none" : listed)")
            }
            throw CheckpointError("--key '\(key.escapedForMessage)' is not in the checkpoint; state dicts: \(all.isEmpty ? "none" : listed)")
        }
        switch all.count {
        case 1:
            return (all[0], all)
        case 0:
            throw CheckpointError("no state dict of tensors in the checkpoint (\(whatItHolds(root, heap: heap)))")
        default:
            throw CheckpointError("\(all.count) state dicts in the checkpoint: \(listed); choose one with --key")
        }
    }

    /// The top-level object, for the error when no state dict is found.
    static func whatItHolds(_ root: PickleValue, heap: PickleHeap) -> String {
        switch root {
        case .dict(let d):
            let keys = heap.dicts[d].keys.prefix(8).map { PickleDescription.repr($0, heap: heap, depth: 3) { _ in "tensor" } }
            return heap.dicts[d].count == 0 ? "an empty dict" : "a dict with keys " + keys.joined(separator: ", ") + (heap.dicts[d].count > 8 ? ", ..." : "")
        case .object:
            if let name = heap.globalName(of: root) {
                return "it pickles a \(PickleDescription.global(name)) object, which idlevit does not build: save the model's state_dict() instead"
            }
            return PickleDescription.kind(root, heap: heap)
        default:
            return "it holds \(PickleDescription.kind(root, heap: heap))"
        }
    }
}
