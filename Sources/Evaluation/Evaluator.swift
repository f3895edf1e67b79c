#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import IR
import IdleViTKit
import Interpreter

/// Where an evaluation is, for a progress line.
public struct EvaluationProgress: Sendable {
    /// Entries taken from the list (images and failures) and the list's length.
    public var done: Int
    public var total: Int
    public var images: Int
    /// Wall seconds since the first batch was asked for.
    public var seconds: Double
    /// Top-1 of the evaluated model so far.
    public var top1: Double
}

public struct EvaluationResult: Sendable {
    /// Entries considered: images evaluated + failed.
    public var entries: Int
    public var failed: [FailedFile]
    /// The model evaluated (IdleViT when a schedule is given).
    public var model: AccuracyTally
    /// The dense original, with `--compare-dense`.
    public var dense: AccuracyTally?
    /// Images whose top-1 is the same for both models.
    public var agreeing: Int
    /// Wall time of the pass: decoding, both models, bookkeeping.
    public var seconds: Double
    /// CPU seconds the decoding threads spent reading, decoding and preprocessing (on other
    /// threads than the models, so mostly hidden behind them when below `seconds`).
    public var decodeSeconds = 0.0

    public var images: Int { model.images }
    public var agreement: Double { images > 0 ? Double(agreeing) / Double(images) : 0 }
}

/// One pass over a labelled image list: stream batches, run the model (and the dense
/// original on the same batch, when given: every file is decoded once), rank each label.
public struct Evaluator {
    public var model: ModelRunner
    public var dense: ModelRunner?
    /// Images per forward pass at most (the stream balances the batches below it).
    public var batchSize: Int
    public var decodeWorkers: Int
    /// A file that cannot be used stops the evaluation (exit 2) instead of being listed.
    public var strict: Bool

    public init(model: ModelRunner, dense: ModelRunner?, batchSize: Int, decodeWorkers: Int, strict: Bool) {
        self.model = model
        self.dense = dense
        self.batchSize = batchSize
        self.decodeWorkers = decodeWorkers
        self.strict = strict
    }

    public func run(_ images: LabelledImages, preprocessor: ImagePreprocessor,
                    progress: (EvaluationProgress) -> Void = { _ in }) throws(EvaluationError) -> EvaluationResult {
        let start = Timing.monotonic
        let stream = ImageBatchStream(files: images.files, maximumBatch: batchSize, workers: decodeWorkers, preprocessor: preprocessor)
        var result = EvaluationResult(entries: images.files.count, failed: [], model: AccuracyTally(),
                                      dense: dense == nil ? nil : AccuracyTally(), agreeing: 0, seconds: 0)
        while let batch = stream.next() {
            if strict, let first = batch.failed.first { throw .unusableFile(first) }
            result.failed += batch.failed
            if let pixels = batch.pixels {
                let (logits, seconds) = try Evaluator.logits(model, pixels)
                result.model.seconds += seconds
                var denseLogits: FloatTensor?
                if let dense {
                    let (values, denseSeconds) = try Evaluator.logits(dense, pixels)
                    result.dense!.seconds += denseSeconds
                    denseLogits = values
                }
                let classes = logits.shape[1]
                for (b, file) in batch.files.enumerated() {
                    let row = UnsafeBufferPointer(start: logits.pointer + b * classes, count: classes)
                    if let label = file.label { result.model.add(rank: Ranking.rank(of: label, in: row)) }
                    if let denseLogits {
                        let denseRow = UnsafeBufferPointer(start: denseLogits.pointer + b * classes, count: classes)
                        if let label = file.label { result.dense!.add(rank: Ranking.rank(of: label, in: denseRow)) }
                        if Ranking.argmax(row) == Ranking.argmax(denseRow) { result.agreeing += 1 }
                    }
                }
            }
            progress(EvaluationProgress(done: batch.entriesDone, total: stream.entryCount, images: result.model.images,
                                        seconds: Timing.monotonic - start, top1: result.model.top1Fraction))
        }
        result.seconds = Timing.monotonic - start
        result.decodeSeconds = stream.decodeSeconds
        return result
    }

    /// Runs one model on a batch: its logits [B, classes] and the seconds it took.
    static func logits(_ runner: ModelRunner, _ pixels: FloatTensor) throws(EvaluationError) -> (FloatTensor, Double) {
        let start = Timing.monotonic
        let outputs: [String: Activation]
        do { outputs = try runner.run(pixels: pixels) } catch { throw .model(error.description) }
        guard let logits = ModelRunner.logits(outputs), logits.shape.count == 2, logits.shape[0] == pixels.shape[0] else {
            throw .model("the model computed no logits [batch, classes]")
        }
        return (logits, Timing.monotonic - start)
    }
}
