import IR

/// Bounds on what a checkpoint can make the reader do. Real checkpoints sit far inside them:
/// DeiT-B's data.pkl is 30 KB with ~1,000 memo entries; a training checkpoint with AdamW state
/// for a 1B-parameter model has a few thousand tensors. A file past one is refused with a line
/// naming the limit.
enum TorchLimits {
    /// One pickle (data.pkl, or the legacy stream's object pickle). The weights are not in it.
    static let pickleBytes = Limit("pickle size", minimum: 0, maximum: 256 << 20)
    /// Values on the machine's stack at once.
    static let pickleStack = Limit("pickle stack depth", minimum: 0, maximum: 1 << 20)
    /// MARKs open at once.
    static let pickleMarks = Limit("pickle MARK depth", minimum: 0, maximum: 1 << 16)
    /// Memo entries.
    static let pickleMemo = Limit("pickle memo size", minimum: 0, maximum: 1 << 20)
    /// Containers, objects and global names built.
    static let pickleObjects = Limit("pickle containers", minimum: 0, maximum: 1 << 21)
    /// Items held by all containers together.
    static let pickleItems = Limit("pickle container items", minimum: 0, maximum: 1 << 23)
    /// One string or bytes value, and one text line.
    static let pickleString = Limit("pickle string length", minimum: 0, maximum: 16 << 20)
    /// One LONG1 / LONG4 integer (the legacy magic number is 10 bytes).
    static let pickleIntegerBytes = Limit("pickle integer width", minimum: 0, maximum: 64)
    /// Opcodes executed by one pickle.
    static let pickleWork = Limit("pickle opcodes", minimum: 0, maximum: 1 << 27)
    /// Entries in a zip's central directory (torch writes a handful plus one per storage).
    static let zipEntries = Limit("zip entries", minimum: 0, maximum: 1 << 20)
    /// Levels a description or a state-dict search walks into nested containers.
    static let walkDepth = 8
}

/// The pickle machine's bounds as plain numbers: `TorchLimits`' values by default, smaller
/// ones in tests so a limit can be reached without a megabyte of opcodes.
struct PickleLimits: Sendable {
    var stack = TorchLimits.pickleStack.maximum
    var marks = TorchLimits.pickleMarks.maximum
    var memo = TorchLimits.pickleMemo.maximum
    var objects = TorchLimits.pickleObjects.maximum
    var items = TorchLimits.pickleItems.maximum
    var string = TorchLimits.pickleString.maximum
    var integerBytes = TorchLimits.pickleIntegerBytes.maximum
    var work = TorchLimits.pickleWork.maximum
}
