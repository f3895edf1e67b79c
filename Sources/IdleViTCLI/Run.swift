import ArgumentParser
import Foundation
import IR
import IdleViTKit
import ModelDescription
import Images
import Interpreter
import Verification

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the model on an input batch and print logits and the top-K classes.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var idle: IdleOptions

    @Option(help: "Input safetensors with 'pixel_values' [B, 3, H, W] (or use --image).")
    var input: String?

    @OptionGroup var imageInput: ImageOptions

    @Option(help: "Classes to show per image (1 to 1048576).")
    var top: Int = 5

    @Option(help: "Class names, one per line (default for 1000 classes: the bundled ImageNet-1k names).")
    var labels: String?

    @OptionGroup var execution: ExecutionOptions

    @Flag(name: .customLong("cut-loss"), help: "Report the token cut loss (inter, intra, total) of each idle layer's selection.")
    var cutLoss = false

    func validate() throws {
        do { try Limits.classes.check(top, "--top") } catch { throw ValidationError(error.description) }
        try checkOneInput(input: input, images: imageInput)
    }

    func run() throws {
        let prepared = try model.prepare(idle)
        let names = try classNames(labels: labels, classes: prepared.architecture.classes, modelLabels: prepared.labels)
        let runner = try execution.runner(prepared)
        let pixels: FloatTensor
        var files: [String]?
        if let input {
            pixels = try loadInputChecked(input, prepared: prepared, runner: runner, execution: execution)
        } else {
            let paths = try imageInput.imagePaths()
            try execution.checkBatch(runner.interpreter, prepared, batch: paths.count, what: "--image (\(paths.count) images)")
            let batch = try imageInput.load(paths, for: prepared)
            (pixels, files) = (batch.pixels, batch.files)
        }
        let idleLayers = prepared.schedule?.effective.idleLayers ?? []
        let outputs: [String: Activation]
        do {
            var capture = Set(runner.selectionNames.map(\.name))
            if cutLoss { capture.formUnion(TokenCutLoss.requiredActivations(layers: idleLayers)) }
            outputs = try runner.run(pixels: pixels, captureNames: capture)
        } catch {
            throw CLIError.invalid(error.description)
        }
        guard let logits = ModelRunner.logits(outputs) else { throw CLIError.invalid("the model computed no logits") }
        let (batch, classes) = (logits.shape[0], logits.shape[1])
        var images: [JSONValue] = []
        for b in 0..<batch {
            let row = Array(UnsafeBufferPointer(start: logits.pointer + b * classes, count: classes))
            let entries = rankClasses(row, top: top, names: names)
            if model.json {
                let file: [(key: String, value: JSONValue)] = files.map { [("file", .string($0[b]))] } ?? []
                images.append(.object(file + [
                    ("logits", .array(row.map { .double(Double($0)) })),
                    ("top", .array(entries.map { e in
                        .object([("class", .int(e.index)), ("label", e.label.map(JSONValue.string) ?? .null),
                                 ("logit", .double(Double(e.logit))), ("probability", .double(e.probability))])
                    })),
                ]))
            } else {
                print("image \(b)\(files.map { " (\($0[b]))" } ?? ""):")
                for e in entries {
                    print("  \(String(format: "%5d", e.index))  \(fixed(Double(e.logit), 4))  p=\(fixed(e.probability, 4))\(e.label.map { "  " + $0 } ?? "")")
                }
            }
        }
        let kept = (prepared.schedule?.kept ?? []).map { $0.map(JSONValue.int) ?? .null }
        let losses = cutLoss ? TokenCutLoss.compute(graph: prepared.graph, activations: outputs, layers: idleLayers) : []
        if model.json {
            var pairs: [(key: String, value: JSONValue)] = [("images", .array(images)), ("kept_tokens", .array(kept))]
            if cutLoss {
                pairs.append(("cut_loss", .array(losses.map { layer, values in
                    .object([("layer", .int(layer)), ("inter", .array(values.map { .double($0.inter) })),
                             ("intra", .array(values.map { .double($0.intra) })), ("total", .array(values.map { .double($0.total) }))])
                })))
            }
            printJSON(.object(pairs))
        } else if let schedule = prepared.schedule {
            print("kept tokens per layer: \(schedule)")
            if cutLoss {
                var table = Table(headers: ["layer", "inter", "intra", "total"], rightAligned: [1, 2, 3])
                for (layer, values) in losses {
                    let n = Double(values.count)
                    table.add([ActivationName.block(layer).name, scientific(values.map(\.inter).reduce(0, +) / n),
                               scientific(values.map(\.intra).reduce(0, +) / n), scientific(values.map(\.total).reduce(0, +) / n)])
                }
                print("token cut loss (mean over images):")
                print(table.render(), terminator: "")
            }
        }
    }
}

/// One class of a logits row: its logit, softmax probability and name.
struct ClassScore {
    var index: Int
    var logit: Float
    var probability: Double
    var label: String?
}

/// The `top` highest-scoring classes of `row`, best first (ties: the lower class index), with
/// softmax probabilities over the whole row.
func rankClasses(_ row: [Float], top: Int, names: [String]?) -> [ClassScore] {
    let maximum = row.max() ?? 0
    let exps = row.map { Foundation.exp(Double($0 - maximum)) }
    let total = exps.reduce(0, +)
    let ranked = row.indices.sorted { row[$0] != row[$1] ? row[$0] > row[$1] : $0 < $1 }.prefix(top)
    return ranked.map { index in
        let label = names.flatMap { $0.indices.contains(index) ? $0[index] : nil }
        return ClassScore(index: index, logit: row[index], probability: exps[index] / total, label: label)
    }
}
