import IR
import Interpreter
import ModelDescription

/// How much working memory running a batch takes, and the check that refuses a batch over the
/// budget before anything batch-sized is allocated. `run`, `bench` and `eval` call it with
/// the batch they are about to run (`--max-memory` raises the budget, default
/// `Limits.defaultMemoryBudgetBytes`).
public enum MemoryBudget {
    /// Estimated bytes for running `batch` images: the interpreter's activation arena, which
    /// grows linearly with the batch (measured at batch 1 and scaled, so fixed scratch is
    /// counted once per image: an over- rather than an under-estimate), plus the input
    /// pixels held twice (as decoded or converted, and as the input tensor) and `extraBytes`
    /// (converted reference tensors, decoded images).
    public static func estimate(_ interpreter: Interpreter, architecture: ModelArchitecture, batch: Int,
                                extraBytes: Int = 0) throws(LimitError) -> Int {
        try Limits.batch.check(batch, "the batch size")
        let perImageArena = interpreter.arenaBytes(batch: 1)
        let a = architecture
        let pixelBytes = try Checked.byteCount([a.inChannels, a.imageSize, a.imageSize], elementSize: 4, "the input image size")
        let perImage = try Checked.add(perImageArena, try Checked.multiply(pixelBytes, 2, "the input size"), "the working set per image")
        let total = try Checked.multiply(perImage, batch, "the working set of \(batch) images")
        return try Checked.add(total, extraBytes, "the working set")
    }

    /// Throws when the estimate for `batch` exceeds `budget` bytes; `what` says where the
    /// batch came from ("--batch 100000", "pixel_values of input.safetensors").
    public static func check(_ interpreter: Interpreter, architecture: ModelArchitecture, batch: Int, extraBytes: Int = 0,
                             budget: Int, what: String) throws(SessionError) {
        let bytes: Int
        do {
            bytes = try estimate(interpreter, architecture: architecture, batch: batch, extraBytes: extraBytes)
        } catch {
            throw .input("\(what): \(error)")
        }
        guard bytes <= budget else {
            throw .input("\(what): a batch of \(batch) needs about \(describeBytes(bytes)) of working memory, over the budget of "
                         + "\(describeBytes(budget)) (raise it with --max-memory, or use a smaller batch)")
        }
    }

    /// `1.5 GiB`, `512 MiB`, `900 KiB`.
    public static func describeBytes(_ bytes: Int) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes) bytes" }
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? "\(Int(rounded)) \(units[unit])" : "\(rounded) \(units[unit])"
    }
}
