import IR

/// A Python global (`module.name`) as a pickle names it. idlevit never imports or calls one:
/// a recognised global builds data (`TorchGlobal`), any other stays an inert name.
public struct PythonGlobal: Hashable, Sendable, CustomStringConvertible {
    public var module: String
    public var name: String

    public var description: String { "\(module).\(name)" }
}

/// The globals whose meaning idlevit knows; they build data, they are never called.
enum KnownGlobal: Sendable, Equatable {
    case orderedDict
    /// `torch._utils._rebuild_tensor` (torch < 1.?): storage, offset, size, stride.
    case rebuildTensor
    /// `torch._utils._rebuild_tensor_v2`: + requires_grad, backward_hooks[, metadata].
    case rebuildTensorV2
    /// `torch._utils._rebuild_tensor_v3`: an untyped storage + the tensor's dtype.
    case rebuildTensorV3
    /// `torch._utils._rebuild_parameter(data, requires_grad, hooks)`: the data tensor.
    case rebuildParameter
    case rebuildParameterWithState
    /// `torch._tensor._rebuild_from_type_v2(func, type, args, state)`: func(*args).
    case rebuildFromTypeV2
    /// `torch.Size(tuple)`: the tuple.
    case torchSize
    /// `torch.Tensor`, `torch.nn.parameter.Parameter`: the class in `_rebuild_from_type_v2`.
    case tensorClass(String)

    var isTensorRebuild: Bool {
        switch self {
        case .rebuildTensor, .rebuildTensorV2, .rebuildTensorV3, .rebuildParameter, .rebuildParameterWithState, .rebuildFromTypeV2:
            return true
        default:
            return false
        }
    }
}

/// A value on the pickle machine's stack. Containers and objects live in `PickleHeap` and
/// are referred to by index: the stack and memo hold small values, a value graph with shared
/// or cyclic parts costs nothing to copy, and walking it can keep a visited set.
enum PickleValue: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer wider than 64 bits: its little-endian two's complement bytes.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    /// An unrecognised global, index into `PickleHeap.globals`: a name, nothing more.
    case global(Int)
    case known(KnownGlobal)
    case dtype(TorchDType)
    case storageClass(StorageClass)
    case tuple(Int)
    case list(Int)
    case dict(Int)
    case set(Int)
    /// A call, instantiation or BUILD of something not recognised: recorded, never run.
    case object(Int)
    case storage(Int)
    case tensor(Int)
    /// A persistent id that names a module class (legacy whole-model pickles): inert.
    case moduleClass(Int)
}

/// A Python dict in insertion order. Keys that Python would hash equal (str, int, bool) are
/// merged as Python merges them; other keys are kept as they come.
struct PickleDict: Sendable {
    enum HashKey: Hashable { case string(String), int(Int) }

    var keys: [PickleValue] = []
    var values: [PickleValue] = []
    private var index: [HashKey: Int] = [:]

    var count: Int { keys.count }

    /// Returns whether a new key was added (false: an existing key's value replaced).
    @discardableResult
    mutating func set(_ key: PickleValue, _ value: PickleValue) -> Bool {
        let hashKey: HashKey?
        switch key {
        case .string(let s): hashKey = .string(s)
        case .int(let i): hashKey = .int(i)
        case .bool(let b): hashKey = .int(b ? 1 : 0)
        default: hashKey = nil
        }
        if let hashKey, let existing = index[hashKey] {
            values[existing] = value
            return false
        }
        if let hashKey { index[hashKey] = keys.count }
        keys.append(key)
        values.append(value)
        return true
    }

    func value(forString key: String) -> PickleValue? {
        index[.string(key)].map { values[$0] }
    }
}

/// Something a pickle asked to call or instantiate that idlevit does not recognise: the
/// callee and what it would have received, kept for `inspect` (`argparse.Namespace` args).
struct PickleObject: Sendable {
    /// The global (or other value) in the callable position.
    var callee: PickleValue
    /// The opcode that asked: REDUCE, NEWOBJ, NEWOBJ_EX, INST or OBJ.
    var via: String
    var arguments: PickleValue
    /// BUILD's state, when one was applied.
    var state: PickleValue?
    /// APPEND / SETITEM applied to the object.
    var listItems: [PickleValue] = []
    var dictItems: [(PickleValue, PickleValue)] = []
}

/// Every container, object, storage and tensor one unpickling built, indexed by the values.
struct PickleHeap: Sendable {
    var globals: [PythonGlobal] = []
    var tuples: [[PickleValue]] = []
    var lists: [[PickleValue]] = []
    var dicts: [PickleDict] = []
    var sets: [[PickleValue]] = []
    var objects: [PickleObject] = []
    var storages: [StorageRecord] = []
    var tensors: [TensorRecord] = []
    var moduleClasses: [PickleValue] = []
    /// Storage index by persistent-id key: one storage shared by many tensors.
    var storageByKey: [String: Int] = [:]
    /// What the limits count: containers/objects/names built, and items they hold.
    var objectCount = 0
    var itemCount = 0

    /// The global a value names when it is one (an unrecognised global, or the callee of an
    /// unrecognised call): what an error about it should say.
    func globalName(of value: PickleValue) -> PythonGlobal? {
        var current = value
        // A callee may itself be a call's result (`f(x)(y)`); the chain is bounded by the
        // object count, so walk it without recursion and give up after a few links.
        for _ in 0..<16 {
            switch current {
            case .global(let i): return globals[i]
            case .object(let i): current = objects[i].callee
            default: return nil
            }
        }
        return nil
    }
}
