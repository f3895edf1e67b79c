import ArgumentParser
import Foundation
import IR
import IdleViTKit
import Interpreter

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time the interpreter: median, min and max latency and images per second.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var idle: IdleOptions

    @Option(help: "Images per run (1 to 65536; the working set must also fit --max-memory).")
    var batch: Int = 1

    @OptionGroup var execution: ExecutionOptions

    @Option(help: "Timed runs, after warm-up (1 to 100000).")
    var runs: Int = 10

    @Option(help: "Untimed warm-up runs (0 to 10000).")
    var warmup: Int = 2

    @OptionGroup var engine: EngineOptions

    static let runLimit = Limit("timed runs", maximum: 100_000)
    static let warmupLimit = Limit("warm-up runs", minimum: 0, maximum: 10_000)

    func validate() throws {
        do {
            try Limits.batch.check(batch, "--batch")
            try Bench.runLimit.check(runs, "--runs")
            try Bench.warmupLimit.check(warmup, "--warmup")
        } catch {
            throw ValidationError(error.description)
        }
    }

    func run() throws {
        let prepared = try model.prepare(idle)
        let a = prepared.architecture
        let runner = try execution.runner(prepared, engine: engine)
        let options = runner.interpreter.options
        let interpreter = runner.interpreter
        // The budget first: the pixels below are the batch's first allocation.
        try execution.checkBatch(interpreter, prepared, batch: batch, what: "--batch \(batch)")
        // Deterministic pseudo-normal pixels: timing must not depend on the input's source.
        let shape = [batch, a.inChannels, a.imageSize, a.imageSize]
        let count = try Checked.elementCount(shape, "the input size")
        let (storage, memory) = TensorStorage.allocate(byteCount: count * 4)
        let values = memory.bindMemory(to: Float.self, capacity: max(count, 1))
        var state: UInt64 = 0x9E3779B97F4A7C15
        for i in 0..<count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            values[i] = Float(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) / 1_000_000
        }
        let pixels = FloatTensor(shape: shape, storage: storage, pointer: UnsafePointer(values))
        for _ in 0..<warmup { _ = try runner.run(pixels: pixels) }
        var times: [Double] = []
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try runner.run(pixels: pixels)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        times.sort()
        let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        let imagesPerSecond = Double(batch) / (median / 1000)
        if model.json {
            printJSON(.object([
                ("batch", .int(batch)), ("threads", .int(interpreter.threads)), ("isa", .string(interpreter.isa.rawValue)),
                ("gemm", .string(options.matrixBackend.rawValue)), ("runs", .int(runs)),
                ("median_ms", .double(median)), ("min_ms", .double(times.first!)), ("max_ms", .double(times.last!)),
                ("images_per_second", .double(imagesPerSecond)),
                ("keep_ratio", prepared.schedule?.keepRatio.map(JSONValue.double) ?? .null),
                ("gmacs", .double(CostModel.summary(a, schedule: prepared.schedule).macs / 1e9)),
            ]))
        } else {
            print("\(prepared.modelName)\(prepared.schedule.map { " idle \($0.keepRatio.map { "r=\($0)" } ?? "explicit")" } ?? " dense"), batch \(batch), \(interpreter.threads) threads, \(options.matrixBackend == .packed ? interpreter.isa.rawValue : "openblas") kernels, \(runs) runs")
            print("median \(fixed(median, 2)) ms, min \(fixed(times.first!, 2)) ms, max \(fixed(times.last!, 2)) ms, \(fixed(imagesPerSecond, 1)) images/s")
        }
    }
}
