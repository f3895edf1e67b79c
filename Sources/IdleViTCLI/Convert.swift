import ArgumentParser
import Exporters
import IR
import IdleViTKit

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the model as an IdleViT bundle (default) or a plain timm-named safetensors checkpoint.")

    enum Target: String, ExpressibleByArgument, CaseIterable {
        case bundle, safetensors
    }

    @OptionGroup var model: ModelOptions
    @OptionGroup var idle: IdleOptions

    @Option(name: .shortAndLong, help: "Output file (written atomically: a temporary file, then a rename).")
    var output: String

    @Option(help: "Output format: bundle or safetensors.")
    var to: Target = .bundle

    @Option(help: "Stored element type: f32, f16 or bf16.")
    var dtype: String = "f32"

    func run() throws {
        guard let outputType = OutputDType(rawValue: dtype.lowercased()) else {
            throw CLIError.invalid("--dtype '\(dtype)' is not one of f32, f16, bf16")
        }
        try refuseOutputs([output], overwriting: [model.model])
        let request = try idle.request(path: model.model, heads: model.heads)
        // A bundle's stored schedule is dropped by --to safetensors (the weights are the dense
        // model's); only an idle schedule asked for on the command line is an error.
        if to == .safetensors, request.asksForIdle {
            throw CLIError.invalid("a plain safetensors checkpoint cannot hold an idle schedule: use --to bundle, or drop --keep-ratio")
        }
        let prepared = try model.prepare(request)
        switch to {
        case .safetensors:
            try CheckpointExport.writeSafetensors(prepared, dtype: outputType, to: output)
        case .bundle:
            try CheckpointExport.writeBundle(prepared, dtype: outputType, to: output)
        }
        if !model.json {
            print("wrote \(output) (\(to.rawValue), \(outputType.rawValue), \(grouped(prepared.graph.parameterCount)) parameters)")
        } else {
            printJSON(.object([("output", .string(output)), ("format", .string(to.rawValue)), ("dtype", .string(outputType.rawValue))]))
        }
    }
}

enum CheckpointExport {
    static let producer = "idlevit \(IdleViTVersion.string)"

    /// Canonical timm names in state-dict order, so `timm.create_model(...).load_state_dict`
    /// accepts the file with strict checking.
    static func writeSafetensors(_ prepared: PreparedModel, dtype: OutputDType, to path: String) throws {
        let items = prepared.graph.constants.map { SafetensorsWriter.Item(name: $0.name, tensor: $0.tensor!, dtype: dtype) }
        var metadata: [(String, String)] = [("format", "pt"), ("producer", producer)]
        metadata.append(("architecture", JSONWriter.write(GraphJSON.encode(prepared.architecture))))
        do {
            try SafetensorsWriter.write(items, metadata: metadata, to: path)
        } catch {
            throw CLIError.invalid(error.description)
        }
    }

    static func writeBundle(_ prepared: PreparedModel, dtype: OutputDType, to path: String) throws {
        do {
            try BundleExport.write(prepared, dtype: dtype, producer: producer, to: path)
        } catch {
            throw CLIError.invalid(error.description)
        }
    }
}
