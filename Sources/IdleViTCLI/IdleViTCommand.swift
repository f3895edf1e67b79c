import ArgumentParser
import Foundation
import Exporters
import IR
#if canImport(Glibc)
import Glibc
#endif

/// `idlevit`: convert, rewrite, verify and run DeiT / IdleViT models on the CPU.
public struct IdleViTCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "idlevit",
        abstract: "Turn DeiT checkpoints into IdleViT models and prove them numerically right.",
        discussion: """
            MODEL may be safetensors, ONNX, HDF5, a PyTorch checkpoint or an IdleViT bundle, detected from its content.
            Exit status: 0 success, 1 verification mismatch, 2 usage error or invalid input.
            """,
        version: IdleViTVersion.string,
        subcommands: [Inspect.self, Convert.self, Verify.self, Run.self, Visualize.self, Stats.self, Bench.self, Eval.self]
    )

    public init() {}

    /// Parses arguments, runs the command and exits with DESIGN §1's status codes.
    public static func runMain(_ arguments: [String]? = nil) -> Never {
        installInterruptHandler()
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
            flushNotes()
            terminate(0)
        } catch let error as CLIError {
            writeError(error.message)
            terminate(error.status)
        } catch let error as ExitCode {
            terminate(error.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                // --help, --version
                self.exit(withError: error)
            }
            // One line: ArgumentParser's own messages may span several.
            writeError(message(for: error) + " (see 'idlevit --help')")
            terminate(2)
        }
    }

    /// On SIGINT/SIGTERM: delete the temporary files of unfinished outputs and exit 128 + signal.
    /// The handler only does async-signal-safe work (atomic loads, unlink, _exit): the
    /// interrupted thread may hold any lock, including malloc's.
    static func installInterruptHandler() {
        AtomicFile.prepareForSignals()
        let handler: @convention(c) (Int32) -> Void = { signal in
            AtomicFile.removeAllPending()
            _exit(128 + signal)
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
    }
}

public enum IdleViTVersion {
    public static let string = "0.1.0"
}

/// A failure with the exit status it maps to and a one-line message.
struct CLIError: Error {
    var message: String
    var status: Int32

    static func invalid(_ message: String) -> CLIError { CLIError(message: message, status: 2) }
    static func mismatch(_ message: String) -> CLIError { CLIError(message: message, status: 1) }
}

/// Prints a rejection as exactly one line (`String.lineSafe`: line breaks joined, control
/// characters escaped), whatever text reached it.
func writeError(_ message: String) {
    let text = "idlevit: error: " + message.lineSafe + "\n"
    FileHandle.standardError.write(Data(text.utf8))
}

func terminate(_ status: Int32) -> Never {
    fflush(nil)
    exit(status)
}
