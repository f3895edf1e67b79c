import ArgumentParser
import IR
import IdleViTKit
import Interpreter

/// `--threads` and `--max-memory`, shared by every command that runs the interpreter.
struct ExecutionOptions: ParsableArguments {
    @Option(help: "Threads (default: all cores; 1 to 1024).")
    var threads: Int?

    @Option(name: .customLong("max-memory"),
            help: ArgumentHelp("Working memory a run may plan for: bytes, or a number with K, M, G or T (default 1G).",
                               discussion: "A batch whose estimated working set (activations, input and converted tensors) exceeds it is refused before anything is allocated.",
                               valueName: "size"))
    var maxMemory: ByteSize?

    func validate() throws {
        if let threads {
            do { try Limits.threads.check(threads, "--threads") } catch { throw ValidationError(error.description) }
        }
    }

    var memoryBudget: Int { maxMemory?.bytes ?? Limits.defaultMemoryBudgetBytes }

    /// The runner (interpreter) for `prepared`, with these threads, the `IDLEVIT_*` engine
    /// variables and, for `bench`, its hidden engine flags.
    func runner(_ prepared: PreparedModel, engine: EngineOptions? = nil) throws -> ModelRunner {
        let options = try engine?.interpreterOptions(threads: threads) ?? InterpreterOptions.fromEnvironment(threads: threads)
        do { return try ModelRunner(prepared, options: options) } catch { throw CLIError.invalid(error.description) }
    }

    /// Refuses a batch whose working set would exceed the budget, before it is allocated.
    func checkBatch(_ interpreter: Interpreter, _ prepared: PreparedModel, batch: Int, extraBytes: Int = 0, what: String) throws {
        do {
            try MemoryBudget.check(interpreter, architecture: prepared.architecture, batch: batch,
                                   extraBytes: extraBytes, budget: memoryBudget, what: what)
        } catch {
            throw CLIError.invalid(error.description)
        }
    }
}

/// A size in bytes from the command line: `1073741824`, `512M`, `4G`, `1.5G` (binary units).
struct ByteSize: ExpressibleByArgument {
    var bytes: Int

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [Character: Double] = ["K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024, "T": 1024 * 1024 * 1024 * 1024]
        var number = Substring(text)
        var scale = 1.0
        if let last = number.last, let unit = units[last] {
            scale = unit
            number = number.dropLast()
        } else if number.hasSuffix("B"), let unit = number.dropLast().last.flatMap({ units[$0] }) {
            scale = unit
            number = number.dropLast(2)
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              let value = Double(number), value > 0,
              let bytes = try? Checked.int(rounding: value * scale, .down, "--max-memory"), bytes > 0 else { return nil }
        self.bytes = bytes
    }

    static var defaultValueDescription: String { "1G" }
}
