import ArgumentParser
import Foundation
import IR
import IdleViTKit
import ModelDescription
import Images
import Interpreter
import Verification
import Evaluation

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

    @Option(help: "Images per forward pass at most with --image, in equal batches (files are decoded on worker threads while the model runs).")
    var batch: Int = 32

    func validate() throws {
        do {
            try Limits.classes.check(top, "--top")
            try Limits.batch.check(batch, "--batch")
        } catch {
            throw ValidationError(error.description)
        }
        try checkOneInput(input: input, images: imageInput)
    }

    func run() throws {
        let prepared = try model.prepare(idle)
        let names = try classNames(labels: labels, classes: prepared.architecture.classes, modelLabels: prepared.labels)
        let idleLayers = prepared.schedule?.effective.idleLayers ?? []
        let runner = try execution.runner(prepared)
        var capture = Set(runner.selectionNames.map(\.name))
        if cutLoss { capture.formUnion(TokenCutLoss.requiredActivations(layers: idleLayers)) }
        var printer = RunPrinter(json: model.json, top: top, names: names, cutLoss: cutLoss, idleLayers: idleLayers, graph: prepared.graph)

        func runBatch(_ pixels: FloatTensor, files: [String]?) throws {
            let outputs: [String: Activation]
            do { outputs = try runner.run(pixels: pixels, captureNames: capture) } catch { throw CLIError.invalid(error.description) }
            guard let logits = ModelRunner.logits(outputs) else { throw CLIError.invalid("the model computed no logits") }
            printer.add(logits: logits, outputs, files: files, images: files?.count ?? logits.shape[0])
        }

        printer.begin()
        if let input {
            try runBatch(try loadInputChecked(input, prepared: prepared, runner: runner, execution: execution), files: nil)
        } else {
            // Streamed: the decoders run ahead while the model runs a batch. A file that cannot
            // be read stops the run, as it did when the folder was one batch (the batches
            // before it are printed).
            let preprocessor = ImagePreprocessor(transform: try imageInput.transform(for: prepared))
            let paths = try imageInput.imagePaths()
            try execution.checkBatch(runner.interpreter, prepared, batch: min(batch, paths.count),
                                     what: "--image with --batch \(batch)")
            let stream = ImageBatchStream(files: LabelledImages(unlabelled: paths).files, maximumBatch: batch,
                                          workers: runner.interpreter.threads, preprocessor: preprocessor)
            while let next = stream.next() {
                for note in next.notes { writeNote("\(note.path.escapedForMessage): \(note.note)") }
                if let failed = next.failed.first { throw CLIError.invalid("\(failed.path.escapedForMessage): \(failed.reason)") }
                if let pixels = next.pixels { try runBatch(pixels, files: next.files.map(\.path)) }
            }
        }
        printer.end(prepared)
    }
}

/// Prints `run`'s results batch by batch: text per image, or one JSON document whose `images`
/// array is written element by element (a folder of thousands of images is never held as one
/// document).
struct RunPrinter {
    let json: Bool
    let top: Int
    let names: [String]?
    let cutLoss: Bool
    let idleLayers: [Int]
    let graph: Graph
    private var count = 0
    /// Per idle layer, the token cut loss of every image so far.
    private var losses: [(layer: Int, values: [TokenCutLoss.Value])] = []

    init(json: Bool, top: Int, names: [String]?, cutLoss: Bool, idleLayers: [Int], graph: Graph) {
        (self.json, self.top, self.names, self.cutLoss, self.idleLayers, self.graph) = (json, top, names, cutLoss, idleLayers, graph)
    }

    func begin() {
        if json { print("{\n  \"images\": [", terminator: "") }
    }

    /// The first `images` rows of a batch (the rest is the stream's zero padding).
    mutating func add(logits: FloatTensor, _ outputs: [String: Activation], files: [String]?, images: Int) {
        let classes = logits.shape[1]
        for b in 0..<images {
            let row = Array(UnsafeBufferPointer(start: logits.pointer + b * classes, count: classes))
            let entries = rankClasses(row, top: top, names: names)
            if json {
                let file: [(key: String, value: JSONValue)] = files.map { [("file", .string($0[b]))] } ?? []
                let image = JSONValue.object(file + [
                    ("logits", .array(row.map { jsonNumber(Double($0)) })),
                    ("top", .array(entries.map { e in
                        .object([("class", .int(e.index)), ("label", e.label.map(JSONValue.string) ?? .null),
                                 ("logit", jsonNumber(Double(e.logit))), ("probability", jsonNumber(e.probability))])
                    })),
                ])
                // An element of the document's "images" array: nesting level 2.
                print((count == 0 ? "\n    " : ",\n    ") + JSONWriter.write(image, pretty: true, indent: 2), terminator: "")
            } else {
                print("image \(count)\(files.map { " (\($0[b]))" } ?? ""):")
                for e in entries {
                    print("  \(String(format: "%5d", e.index))  \(fixed(Double(e.logit), 4))  p=\(fixed(e.probability, 4))\(e.label.map { "  " + $0 } ?? "")")
                }
            }
            count += 1
        }
        if cutLoss {
            let batchLosses = TokenCutLoss.compute(graph: graph, activations: outputs, layers: idleLayers)
            if losses.isEmpty { losses = batchLosses.map { ($0.0, []) } }
            for (i, entry) in batchLosses.enumerated() { losses[i].values += entry.1.prefix(images) }
        }
    }

    func end(_ prepared: PreparedModel) {
        let kept = (prepared.schedule?.kept ?? []).map { $0.map(JSONValue.int) ?? .null }
        if json {
            var pairs: [(key: String, value: JSONValue)] = [("kept_tokens", .array(kept))]
            if cutLoss {
                pairs.append(("cut_loss", .array(losses.map { layer, values in
                    .object([("layer", .int(layer)), ("inter", .array(values.map { jsonNumber($0.inter) })),
                             ("intra", .array(values.map { jsonNumber($0.intra) })), ("total", .array(values.map { jsonNumber($0.total) }))])
                })))
            }
            // The rest of the document after the images array, at the same indentation.
            var rest = JSONWriter.write(.object(pairs), pretty: true)
            rest.removeFirst(2)  // "{\n"
            print((count == 0 ? "]" : "\n  ]") + ",\n" + rest)
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
