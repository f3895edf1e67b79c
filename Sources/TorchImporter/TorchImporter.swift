import IR
import Importers

/// A `torch.save` checkpoint read into a weight set, with what `inspect` shows about the rest.
public struct TorchCheckpoint: Sendable {
    public var weights: WeightSet
    /// The loaded state dict's tensors as stored (dtype, shape, bytes), in its order.
    public var tensors: [StoredTensor]
    public var details: [(String, String)]
    public var contents: CheckpointContents

    public struct StoredTensor: Sendable {
        public var name: String
        public var dtype: String
        public var shape: [Int]
        public var bytes: Int
    }
}

/// PyTorch checkpoints (`.pth`, `.pt`, `.bin`): file -> layout (zip or legacy stream) ->
/// pickle machine (data only) -> the state dict -> Float32 weights, mapped where possible.
public enum TorchImporter {
    /// Whether a file's first bytes are a torch.save zip archive or legacy stream.
    public static func recognizes(head: some Collection<UInt8>) -> Bool {
        TorchLayouts.looksLikeZip(head.prefix(4)) || TorchLayouts.looksLikeLegacy(head.prefix(3))
    }

    /// `key` picks the state dict when the checkpoint holds several (`--key`).
    public static func load(path: String, key: String? = nil) throws(ImportError) -> TorchCheckpoint {
        let file = displayName(path)
        let map: TensorStorage
        do { map = try TensorStorage.map(path: path) } catch { throw .unreadable(file: file, reason: error.message) }
        let unpickled: UnpickledCheckpoint
        let chosen: StateDictCandidate
        let all: [StateDictCandidate]
        do {
            unpickled = try TorchLayouts.read(map.bytes(0..<map.byteCount))
            (chosen, all) = try StateDictSelection.select(unpickled.root, heap: unpickled.heap, key: key)
        } catch {
            throw .invalidFile(file: file, format: "PyTorch checkpoint", rule: error.message)
        }
        let heap = unpickled.heap
        let dict = heap.dicts[chosen.dict]
        var weights = WeightSet(file: path, format: .pytorch)
        var tensors: [TorchCheckpoint.StoredTensor] = []
        for (keyValue, value) in zip(dict.keys, dict.values) {
            guard case .string(let name) = keyValue else { continue } // isStateDict admits string keys only
            guard Limits.nameBytes.contains(name.utf8.count) else {
                throw .invalidTensor(file: file, tensor: String(name.prefix(64)).escapedForMessage + "...",
                                     rule: "a name of \(name.utf8.count) bytes, over the limit of \(Limits.nameBytes.maximum)")
            }
            let shown = name.escapedForMessage
            guard case .tensor(let t) = value else {
                throw .invalidTensor(file: file, tensor: shown, rule: "is \(PickleDescription.kind(value, heap: heap)), not a tensor rebuild; nothing was run")
            }
            let record = heap.tensors[t]
            tensors.append(.init(name: name, dtype: record.dtype.shortName, shape: record.sizes, bytes: record.elementCount * record.dtype.size))
            // BatchNorm's integer step counter (LV-ViT's stem): set aside for the model description.
            let integer = [.int64, .int32, .int16, .int8, .uint8].contains(record.dtype)
            if BatchNormCounter.matches(name: name, isInteger: integer, shape: record.sizes) {
                weights.counters.append(name)
                continue
            }
            let tensor: FloatTensor
            let source: ElementType
            do {
                (tensor, source) = try TensorMaterializer.floatTensor(record, storage: heap.storages[record.storage], map: map)
            } catch {
                throw .invalidTensor(file: file, tensor: shown, rule: error.message)
            }
            weights.append(Weight(name: name, tensor: tensor, sourceType: source))
        }
        let contents = CheckpointContents(unpickled, chosen: chosen, candidates: all)
        var details: [(String, String)] = [("layout", unpickled.layout)]
        details.append(("state dict", contents.stateDictNote))
        return TorchCheckpoint(weights: weights, tensors: tensors, details: details, contents: contents)
    }
}
