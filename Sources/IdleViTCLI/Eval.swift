import ArgumentParser
import Evaluation
import Foundation
import IR
import IdleViTKit
import Interpreter

/// `idlevit eval`: top-1 / top-5 over a labelled image folder, streamed; with a schedule and
/// `--compare-dense`, the dense original on the same decoded images and the two models' agreement.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Top-1 / top-5 accuracy over a labelled image folder, dense and IdleViT side by side.",
        discussion: """
            Labels come from the folder layout: one subfolder per class, named by its ImageNet-1k WordNet id \
            (n01440764, the ImageNet validation layout; class index = position in the sorted list of the 1000 ids) \
            or by its class index (0, 1, ...); or from --labels-file, a CSV of 'path,label' lines (paths relative to \
            --images, labels a class index or a WordNet id, optional 'path,label' header). Files are run in sorted \
            order, decoded on worker threads while the model runs the previous batch; memory depends on the batch \
            size, not on the folder. Files that cannot be read or are not JPEG/PNG images are counted and listed \
            (--strict makes the first one an error). images/s is per model (its own running time); seconds is the \
            wall time of the whole pass.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var idle: IdleOptions

    @Option(help: ArgumentHelp("The labelled image folder.", valueName: "folder"))
    var images: String

    @Option(name: .customLong("labels-file"), help: ArgumentHelp("CSV of 'path,label' lines instead of class folders.", valueName: "csv"))
    var labelsFile: String?

    @Flag(name: .customLong("compare-dense"), help: "Also run the dense original on every image (decoded once) and report its accuracy and the top-1 agreement.")
    var compareDense = false

    @Option(help: "Images per forward pass at most: the files are split into equal batches (100 files, at most 32: 4 batches of 25).")
    var batch: Int = 32

    /// `--threads` (for the model, and for decoding) and `--max-memory`.
    @OptionGroup var execution: ExecutionOptions

    @Option(help: "Evaluate N files spread evenly over the sorted list (every class of an ImageNet folder, as far as N allows).")
    var limit: Int?

    @OptionGroup var preprocessing: PreprocessOptions

    @Option(help: "Progress line on stderr: auto (when stderr is a terminal), always, never.")
    var progress: ProgressMode = .auto

    @Flag(help: "Stop with an error at the first file that cannot be read or decoded.")
    var strict = false

    func validate() throws {
        try Limits.batch.check(batch, "--batch")
        if let limit, limit <= 0 { throw ValidationError("--limit must be positive") }
    }

    func run() throws {
        let prepared = try model.prepare(idle)
        let architecture = prepared.architecture
        if compareDense, prepared.schedule == nil {
            throw CLIError.invalid("--compare-dense compares an IdleViT schedule with the dense model: pass --keep-ratio R, --kept-tokens or an IdleViT bundle")
        }
        let transform = try preprocessing.transform(for: prepared)
        var list: LabelledImages
        do {
            if let labelsFile {
                list = try LabelsFile.read(labelsFile, imageFolder: images, classes: architecture.classes)
            } else {
                list = try ClassFolders.scan(images, classes: architecture.classes)
            }
        } catch {
            throw CLIError.invalid(error.description)
        }
        if let limit { list = list.limited(to: limit) }

        let runner = try execution.runner(prepared)
        let dense = compareDense ? try execution.runner(prepared.denseOriginal) : nil
        try checkMemory(runner, dense: dense, prepared: prepared, files: list.files.count)
        let evaluator = Evaluator(model: runner, dense: dense, batchSize: batch,
                                  decodeWorkers: runner.interpreter.threads, strict: strict)
        let line = ProgressLine(mode: progress)
        let result: EvaluationResult
        do {
            result = try evaluator.run(list, preprocessor: ImagePreprocessor(transform: transform)) { line.update($0) }
        } catch {
            line.finish()
            throw CLIError.invalid(error.description)
        }
        line.finish()
        guard result.images > 0 else {
            let first = result.failed.first.map { ": \($0.path.escapedForMessage): \($0.reason)" } ?? ""
            throw CLIError.invalid("\(images.escapedForMessage): none of the \(result.entries) files could be evaluated\(first)")
        }
        if model.json {
            printJSON(json(result, prepared: prepared))
        } else {
            printText(result, prepared: prepared, layout: list.layout)
        }
    }

    /// Refuses a batch whose working set exceeds `--max-memory` before anything is decoded: the
    /// model's, plus what lives beside it, the dense original's (`--compare-dense`) and the
    /// stream's window of two preprocessed batches ahead.
    private func checkMemory(_ runner: ModelRunner, dense: ModelRunner?, prepared: PreparedModel, files: Int) throws {
        let batchSize = ImageBatchStream.balancedBatch(entries: files, maximum: batch)
        let beside: Int
        do {
            let a = prepared.architecture
            let image = try Checked.byteCount([a.inChannels, a.imageSize, a.imageSize], elementSize: 4, "the input image size")
            let window = try Checked.multiply(image, 2 * batchSize, "the decoding window")
            let denseBytes = try dense.map { try MemoryBudget.estimate($0.interpreter, architecture: a, batch: batchSize) } ?? 0
            beside = try Checked.add(window, denseBytes, "the working set")
        } catch {
            throw CLIError.invalid("--batch \(batch): \(error)")
        }
        try execution.checkBatch(runner.interpreter, prepared, batch: batchSize, extraBytes: beside, what: "--batch \(batch)")
    }

    private func modelName(_ prepared: PreparedModel) -> String {
        guard let schedule = prepared.schedule else { return "dense" }
        return "IdleViT " + (schedule.keepRatio.map { "r=\($0)" } ?? "(kept tokens given)")
    }

    private func json(_ result: EvaluationResult, prepared: PreparedModel) -> JSONValue {
        let schedule = prepared.schedule
        var pairs: [(key: String, value: JSONValue)] = [
            ("images", .int(result.images)),
            ("top1", .double(result.model.top1Fraction)),
            ("top5", .double(result.model.top5Fraction)),
            ("images_per_second", jsonNumber(result.model.imagesPerSecond)),
            ("seconds", .double(result.seconds)),
            ("decode_cpu_seconds", .double(result.decodeSeconds)),
            ("kept_tokens", .array((schedule?.kept ?? []).map { $0.map(JSONValue.int) ?? .null })),
            ("failed", .array(result.failed.map { .object([("file", .string($0.path)), ("reason", .string($0.reason))]) })),
            ("files", .int(result.entries)),
            ("top1_count", .int(result.model.top1)),
            ("top5_count", .int(result.model.top5)),
            ("keep_ratio", schedule?.keepRatio.map(JSONValue.double) ?? .null),
            ("batch", .int(batch)),
        ]
        if let dense = result.dense {
            pairs.append(("dense", .object([
                ("top1", .double(dense.top1Fraction)), ("top5", .double(dense.top5Fraction)),
                ("images_per_second", jsonNumber(dense.imagesPerSecond)),
                ("top1_count", .int(dense.top1)), ("top5_count", .int(dense.top5)),
            ])))
            pairs.append(("agreement", .double(result.agreement)))
            pairs.append(("agreement_count", .int(result.agreeing)))
        }
        return .object(pairs)
    }

    private func printText(_ result: EvaluationResult, prepared: PreparedModel, layout: LabelLayout) {
        let name = modelName(prepared)
        let failed = result.failed.count
        print("\(grouped(result.images)) images from \(images.escapedForMessage), labels from \(layout.rawValue)"
              + (failed == 0 ? "" : "; \(grouped(failed)) \(failed == 1 ? "file" : "files") could not be used"))
        var table = Table(headers: ["model", "top-1", "top-5", "images/s"], rightAligned: [1, 2, 3])
        func percent(_ value: Double) -> String { fixed(100 * value, 2) + "%" }
        table.add([name, percent(result.model.top1Fraction), percent(result.model.top5Fraction), fixed(result.model.imagesPerSecond, 1)])
        if let dense = result.dense {
            table.add(["dense", percent(dense.top1Fraction), percent(dense.top5Fraction), fixed(dense.imagesPerSecond, 1)])
        }
        print(table.render(), terminator: "")
        if result.dense != nil {
            print("top-1 agreement with dense: \(percent(result.agreement)) (\(grouped(result.agreeing)) of \(grouped(result.images)))")
        }
        if let schedule = prepared.schedule { print("kept tokens per layer: \(schedule)") }
        print("\(fixed(result.seconds, 2)) s in all, \(fixed(Double(result.entries) / max(result.seconds, 1e-9), 1)) files/s end to end; "
              + "decoding took \(fixed(result.decodeSeconds, 2)) CPU-s on worker threads")
        if !result.failed.isEmpty {
            print("failed:")
            let shown = 5
            for failure in result.failed.prefix(shown) { print("  \(failure.path.escapedForMessage): \(failure.reason)") }
            if result.failed.count > shown { print("  ... and \(grouped(result.failed.count - shown)) more (--json lists them all)") }
        }
    }
}

/// When the progress line is shown.
enum ProgressMode: String, ExpressibleByArgument, CaseIterable {
    case auto, always, never
}
