import IR
import IdleViTKit
import Importers
import Interpreter

/// Refuses a command whose output file is one of its inputs, whatever the spelling (`x`,
/// `./x`, a symlink or hard link to it): the atomic rename would silently replace the input,
/// and with `--dtype f16` the F32 weights would be gone. Checked before any work is done.
func refuseOutputs(_ outputs: [String], overwriting inputs: [String]) throws {
    for output in outputs {
        guard let target = RegularFile.identity(of: output) else { continue }
        for input in inputs where RegularFile.identity(of: input) == target {
            let same = input == output ? "" : " ('\(input.escapedForMessage)')"
            throw CLIError.invalid("\(output.escapedForMessage): the output is the input file\(same); write to another path")
        }
    }
}

/// The input batch of `path` with its batch checked against the memory budget before the
/// pixels are converted or copied.
func loadInputChecked(_ path: String, prepared: PreparedModel, runner: ModelRunner, execution: ExecutionOptions) throws -> FloatTensor {
    do {
        let input = try Session.openInput(path: path, for: prepared.architecture)
        try MemoryBudget.check(runner.interpreter, architecture: prepared.architecture, batch: input.batch,
                               budget: execution.memoryBudget, what: displayName(path))
        let pixels = try input.tensor()
        // NaN or infinite pixels make every logit NaN: an input no image can produce.
        if let index = pixels.buffer.firstIndex(where: { !$0.isFinite }) {
            throw CLIError.invalid("\(displayName(path)): tensor '\(input.entry.name.escapedForMessage)' holds a non-finite value (\(pixels.buffer[index]) at element \(index))")
        }
        return pixels
    } catch let error as CLIError {
        throw error
    } catch {
        throw CLIError.invalid("\(error)")
    }
}
