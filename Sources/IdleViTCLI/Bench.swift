import ArgumentParser
import Foundation
import IR
import IdleViTKit
import Interpreter

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time the interpreter: median, min and max latency and images per second.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var idle: IdleOptions

    @Option(help: "Images per run.")
    var batch: Int = 1

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    @Option(help: "Timed runs, after warm-up.")
    var runs: Int = 10

    @Option(help: "Untimed warm-up runs.")
    var warmup: Int = 2

    @OptionGroup var engine: EngineOptions

    func run() throws {
        guard batch > 0, runs > 0, warmup >= 0 else { throw CLIError.invalid("--batch and --runs must be positive") }
        if let threads, threads <= 0 { throw CLIError.invalid("--threads must be positive") }
        let options = try engine.interpreterOptions(threads: threads)
        let prepared = try model.prepare(idle)
        let a = prepared.architecture
        // Deterministic pseudo-normal pixels: timing must not depend on the input's source.
        var state: UInt64 = 0x9E3779B97F4A7C15
        let count = batch * a.inChannels * a.imageSize * a.imageSize
        var values = [Float](repeating: 0, count: count)
        for i in 0..<count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            values[i] = Float(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) / 1_000_000
        }
        let pixels = FloatTensor(shape: [batch, a.inChannels, a.imageSize, a.imageSize], values: values)
        let runner: ModelRunner
        do { runner = try ModelRunner(prepared, options: options) } catch { throw CLIError.invalid(error.description) }
        let interpreter = runner.interpreter
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
