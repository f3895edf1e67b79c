import IR

/// What a checkpoint holds besides the weights idlevit loads, for `inspect`: the top-level
/// entries (optimizer state, epoch, scaler, ...), the fields of objects such as the training
/// `args` (an `argparse.Namespace`, shown, never built), and the globals the pickle names that
/// idlevit left inert. All text is escaped and bounded.
public struct CheckpointContents: Sendable {
    public struct Entry: Sendable {
        public var key: String
        public var summary: String
    }

    public struct Fields: Sendable {
        /// The top-level key holding the object ("args").
        public var key: String
        /// The object's class ("argparse.Namespace").
        public var type: String
        public var fields: [Entry]
        public var total: Int
    }

    /// Where the weights came from: "'model'", or "(top level)" for a plain state dict.
    public var stateDict: String
    /// Every state dict found; more than one means `--key` chose (or must choose).
    public var candidates: [String]
    /// Top-level entries in order (empty when the file is a plain state dict).
    public var entries: [Entry]
    /// Objects with attributes among the top-level entries.
    public var objects: [Fields]
    /// Distinct unrecognised globals, in the order the pickle names them: never imported.
    public var inertGlobals: [String]

    static let fieldsShown = 200
    static let entriesShown = 64

    var stateDictNote: String {
        let others = candidates.filter { $0 != stateDict }
        if others.isEmpty { return stateDict == "(top level)" ? "the file is a state dict" : "'\(stateDict)' (the only one)" }
        return "'\(stateDict)' (chosen by --key; also \(others.map { "'\($0)'" }.joined(separator: ", ")))"
    }

    init(_ checkpoint: UnpickledCheckpoint, chosen: StateDictCandidate, candidates all: [StateDictCandidate]) {
        let heap = checkpoint.heap
        stateDict = chosen.name.escapedForMessage
        candidates = all.map { $0.name.escapedForMessage }
        entries = []
        objects = []
        let tensorText: (Int) -> String = { index in
            let t = heap.tensors[index]
            return "tensor(\(t.dtype.shortName) [\(t.sizes.map(String.init).joined(separator: ", "))])"
        }
        if case .dict(let d) = checkpoint.root, !chosen.path.isEmpty {
            let dict = heap.dicts[d]
            let candidateByDict = Dictionary(all.map { ($0.dict, $0) }, uniquingKeysWith: { first, _ in first })
            for (key, value) in zip(dict.keys, dict.values).prefix(Self.entriesShown) {
                let name: String
                if case .string(let s) = key { name = s.escapedForMessage } else { name = PickleDescription.repr(key, heap: heap, depth: 3, tensors: tensorText) }
                let summary: String
                if case .dict(let child) = value, let candidate = candidateByDict[child] {
                    summary = "state dict of \(candidate.tensorCount) tensors" + (child == chosen.dict ? " (loaded)" : "")
                } else if case .dict(let child) = value {
                    let keys = heap.dicts[child].keys.prefix(8).map { PickleDescription.repr($0, heap: heap, depth: 3, tensors: tensorText) }
                    summary = "dict of \(heap.dicts[child].count)" + (keys.isEmpty ? "" : ": " + keys.joined(separator: ", ") + (heap.dicts[child].count > 8 ? ", ..." : ""))
                } else {
                    summary = PickleDescription.repr(value, heap: heap, depth: 1, tensors: tensorText)
                }
                entries.append(Entry(key: name, summary: summary))
                if let (fields, total) = PickleDescription.fields(of: value, heap: heap, limit: Self.fieldsShown) {
                    let type = heap.globalName(of: value).map(PickleDescription.global) ?? "object"
                    objects.append(Fields(key: name, type: type, fields: fields.map {
                        Entry(key: $0.0, summary: PickleDescription.repr($0.1, heap: heap, depth: 1, tensors: tensorText))
                    }, total: total))
                }
            }
            if dict.count > Self.entriesShown {
                entries.append(Entry(key: "...", summary: "\(dict.count - Self.entriesShown) more entries"))
            }
        }
        var seen = Set<PythonGlobal>()
        inertGlobals = heap.globals.filter { seen.insert($0).inserted }.prefix(32).map(PickleDescription.global)
    }
}
