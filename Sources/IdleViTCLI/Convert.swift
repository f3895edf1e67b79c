import ArgumentParser
import Exporters
import IR
import IdleViTKit
import ModelDescription
import ONNXExporter

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the model as an IdleViT bundle (default), a plain timm-named safetensors checkpoint, or an ONNX model.")

    enum Target: String, ExpressibleByArgument, CaseIterable {
        case bundle, safetensors, onnx
    }

    @OptionGroup var model: ModelOptions
    @OptionGroup var idle: IdleOptions

    @Option(name: .shortAndLong, help: "Output file (written atomically: a temporary file, then a rename).")
    var output: String

    @Option(help: "Output format: bundle, safetensors or onnx.")
    var to: Target = .bundle

    @Option(help: "Stored element type: f32, f16 or bf16 (ONNX: f32 only).")
    var dtype: String = "f32"

    @Flag(name: .customLong("selection-outputs"), help: "ONNX: also output blocks.{i}.selected (int64 [batch, P + K]) for every idle layer.")
    var selectionOutputs = false

    @Option(help: "ONNX: operator set version (\(ONNXExportOptions.supportedOpsets.lowerBound) to \(ONNXExportOptions.supportedOpsets.upperBound)).")
    var opset: Int = ONNXExportOptions.defaultOpset

    @Flag(name: .customLong("external-data"), help: "ONNX: store the weights in OUT.data next to the model (automatic above 2 GB).")
    var externalData = false

    func validate() throws {
        if to != .onnx {
            if selectionOutputs || externalData || opset != ONNXExportOptions.defaultOpset {
                throw ValidationError("--selection-outputs, --opset and --external-data apply to --to onnx only")
            }
            return
        }
        guard ONNXExportOptions.supportedOpsets.contains(opset) else {
            let range = ONNXExportOptions.supportedOpsets
            throw ValidationError("--opset \(opset) is not supported (\(range.lowerBound) to \(range.upperBound))")
        }
        guard dtype.lowercased() == "f32" else { throw ValidationError("--to onnx writes f32 weights only (--dtype \(dtype))") }
    }

    func run() throws {
        guard let outputType = OutputDType(rawValue: dtype.lowercased()) else {
            throw CLIError.invalid("--dtype '\(dtype)' is not one of f32, f16, bf16")
        }
        // --to onnx may also write OUTPUT.data (external weights).
        try refuseOutputs(to == .onnx ? [output, output + ".data"] : [output], overwriting: [model.model])
        let request = try idle.request(path: model.model, heads: model.heads, key: model.key, skipLam: model.skipLam)
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
        case .onnx:
            let options = ONNXExportOptions(opset: opset, selectionOutputs: selectionOutputs, externalData: externalData,
                                            producerName: "idlevit", producerVersion: IdleViTVersion.string)
            let summary: ONNXExportSummary
            do {
                summary = try ONNXExporter.export(prepared.graph, options: options, to: output)
            } catch {
                throw CLIError.invalid(error.description)
            }
            if model.json {
                printJSON(.object([("output", .string(output)), ("format", .string("onnx")), ("opset", .int(opset)),
                                   ("bytes", .int(summary.bytes)), ("external_data", summary.dataFile.map(JSONValue.string) ?? .null),
                                   ("nodes", .int(summary.nodes)), ("outputs", .array(summary.outputs.map(JSONValue.string)))]))
            } else {
                let data = summary.dataFile.map { " + \($0) (\(grouped(summary.dataBytes)) bytes)" } ?? ""
                print("wrote \(output) (onnx, opset \(opset), \(summary.nodes) nodes, \(grouped(ModelDescription.parameterCount(prepared.architecture))) parameters)\(data)")
                print("outputs: \(summary.outputs.joined(separator: ", "))")
            }
            return
        }
        if !model.json {
            print("wrote \(output) (\(to.rawValue), \(outputType.rawValue), \(grouped(ModelDescription.parameterCount(prepared.architecture))) parameters)")
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
