import ArgumentParser
import Foundation
import Exporters
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
            writeError(message(for: error) + "\n" + "Run 'idlevit --help' for usage.")
            terminate(2)
        }
    }

    static func installInterruptHandler() {
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

func writeError(_ message: String) {
    var text = "idlevit: error: " + message
    if !text.hasSuffix("\n") { text += "\n" }
    FileHandle.standardError.write(Data(text.utf8))
}

func terminate(_ status: Int32) -> Never {
    fflush(nil)
    exit(status)
}
