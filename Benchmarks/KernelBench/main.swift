// idlevit-kernel-bench: this machine's FMA peak, the GEMM microkernel's ceiling over operands
// in L1, and the interpreter's GEMM and attention kernels on DeiT's shapes against the OpenBLAS
// engine, as GFLOP/s and % of that peak.
// See Benchmarks/README.md ("Where the time goes").
import ArgumentParser
import Foundation
import Interpreter

@main
struct KernelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "idlevit-kernel-bench",
        abstract: "FMA peak per core and per all cores, and the matrix kernels on DeiT shapes (packed vs OpenBLAS).")

    @Option(help: "Thread counts, comma separated.")
    var threads: String = "1,2"

    @Option(help: "Rounds; each round alternates the contenders and measures the peak next to them.")
    var rounds: Int = 5

    @Option(help: "Seconds per timing.")
    var seconds: Double = 0.15

    @Option(help: "Models: s, b (DeiT-S, DeiT-B), comma separated.")
    var models: String = "s,b"

    @Option(help: "Instruction set of the packed kernels (default: the best this CPU has).")
    var isa: String?

    @Flag(help: "Weights read from memory, as in a model run: each call uses another of enough copies to fill 64 MB.")
    var coldWeights = false

    @Option(help: "Which kernels: linear, attention (comma separated).")
    var kernels: String = "linear,attention"

    @Flag(help: "Only the FMA peak and the microkernel ceiling.")
    var peakOnly = false

    func validate() throws {
        guard kernels.split(separator: ",").allSatisfy({ ["linear", "attention"].contains(String($0)) }) else {
            throw ValidationError("--kernels takes linear, attention (comma separated)")
        }
        guard rounds > 0, seconds > 0 else { throw ValidationError("--rounds and --seconds must be positive") }
        guard threadCounts.count > 0, threadCounts.allSatisfy({ $0 > 0 && $0 <= 64 }) else {
            throw ValidationError("--threads takes thread counts 1-64, comma separated")
        }
        if let isa { guard let value = KernelISA(rawValue: isa), value.isSupported else { throw ValidationError("--isa \(isa) cannot run here") } }
    }

    var threadCounts: [Int] { threads.split(separator: ",").compactMap { Int($0) } }

    func run() throws {
        let isa = isa.flatMap(KernelISA.init(rawValue:)) ?? KernelISA.best
        print(cpuDescription())
        print("kernels: \(isa.rawValue) (this CPU runs: \(KernelISA.supported.map(\.rawValue).joined(separator: ", ")))\n")

        print("## FMA peak, GFLOP/s (median of \(rounds); range)\n")
        print("| ISA | " + threadCounts.map { "\($0) thread\($0 > 1 ? "s" : "")" }.joined(separator: " | ") + " |")
        print("|---|" + String(repeating: "---|", count: threadCounts.count))
        for candidate in KernelISA.supported {
            var cells: [String] = []
            for t in threadCounts {
                let rates = (0..<rounds).map { _ in FMAPeak.measure(isa: candidate, threads: t, seconds: seconds)!.flopsPerSecond / 1e9 }
                cells.append("\(fixed(median(rates), 1)) (\(fixed(rates.min()!, 0))-\(fixed(rates.max()!, 0)))")
            }
            print("| \(candidate.rawValue) | " + cells.joined(separator: " | ") + " |")
        }
        printMicrokernelCeiling(isa: isa)
        if peakOnly { return }
        let chosen = Set(kernels.split(separator: ",").map(String.init))
        if chosen.contains("linear") { try printLinearLayers(isa: isa) }
        if chosen.contains("attention") { try printAttention(isa: isa) }
    }

    /// The GEMM's microkernel alone, over operands in L1, against the FMA peak of the same round:
    /// how close to the peak any product can come here (tile set-up and stores included).
    func printMicrokernelCeiling(isa: KernelISA) {
        print("\n## Microkernel ceiling (\(isa.rawValue) tiles over operands in L1): GFLOP/s, % of the peak in the same round\n")
        print("| T | microkernel | % peak |")
        print("|---|---|---|")
        for t in threadCounts {
            var rates: [Double] = [], shares: [Double] = []
            for _ in 0..<rounds {
                let peak = FMAPeak.measure(isa: isa, threads: t, seconds: seconds / 2)!.flopsPerSecond
                let tiles = FMAPeak.measure(isa: isa, threads: t, seconds: seconds / 2, loop: .microkernel)!.flopsPerSecond
                rates.append(tiles / 1e9)
                shares.append(100 * tiles / peak)
            }
            print("| \(t) | \(fixed(median(rates), 1)) | \(fixed(median(shares), 1))% |")
        }
    }

    func printLinearLayers(isa: KernelISA) throws {
        print("\n## Linear layers: GFLOP/s and % of the FMA peak measured in the same round (medians of \(rounds))\n")
        print("| shape | rows x K -> N | T | packed | % peak | OpenBLAS | % peak | packed / OpenBLAS time |")
        print("|---|---|---|---|---|---|---|---|")
        for (label, product) in linearShapes() {
            for t in threadCounts {
                let row = try compare(flops: product.flops, isa: isa, threads: t) { try product.run(isa: $0, threads: t) }
                print("| \(label) | \(product.rows) x \(product.inFeatures) -> \(product.outFeatures) | \(t) | \(row) |")
            }
        }
    }

    func printAttention(isa: KernelISA) throws {
        print("\n## Attention (QK^T + PV flops): GFLOP/s, medians of \(rounds)\n")
        print("| model, batch | T | fused | % peak | OpenBLAS | % peak | fused / OpenBLAS time |")
        print("|---|---|---|---|---|---|---|")
        for (label, attention) in attentionShapes() {
            for t in threadCounts {
                let row = try compare(flops: attention.flops, isa: isa, threads: t) { try attention.run(isa: $0, threads: t) }
                print("| \(label) | \(t) | \(row) |")
            }
        }
    }

    /// Times `kernel` with the packed kernels of `isa` and with OpenBLAS (`nil`) in every round,
    /// which of the two goes first alternating so that neither always follows the peak loop;
    /// returns the table cells: GFLOP/s and % of the FMA peak measured in the same round for
    /// both, and the median ratio of their times.
    func compare(flops: Double, isa: KernelISA, threads t: Int, _ kernel: (KernelISA?) throws -> Void) throws -> String {
        var ours: [Double] = [], theirs: [Double] = [], oursShare: [Double] = [], theirsShare: [Double] = [], ratio: [Double] = []
        for round in 0..<rounds {
            let peak = FMAPeak.measure(isa: isa, threads: t, seconds: 0.02)!.flopsPerSecond
            var a = 0.0, b = 0.0
            if round % 2 == 0 {
                a = try KernelBenchmark.time(seconds: seconds) { try kernel(isa) }
                b = try KernelBenchmark.time(seconds: seconds) { try kernel(nil) }
            } else {
                b = try KernelBenchmark.time(seconds: seconds) { try kernel(nil) }
                a = try KernelBenchmark.time(seconds: seconds) { try kernel(isa) }
            }
            ours.append(flops / a / 1e9)
            theirs.append(flops / b / 1e9)
            oursShare.append(100 * flops / a / peak)
            theirsShare.append(100 * flops / b / peak)
            ratio.append(a / b)
        }
        return "\(fixed(median(ours), 1)) | \(fixed(median(oursShare), 0))% | \(fixed(median(theirs), 1)) | "
            + "\(fixed(median(theirsShare), 0))% | \(fixed(median(ratio), 2))"
    }

    /// The products of a DeiT block: dense (197 tokens per image) at batch 1 and 8, and an
    /// idle block's gathered rows at r = 0.7 (1 + 137 and 1 + 67 tokens).
    func linearShapes() -> [(String, KernelBenchmark.Linear)] {
        var shapes: [(String, KernelBenchmark.Linear)] = []
        for model in models.split(separator: ",") {
            let (name, c): (String, Int) = model == "b" ? ("DeiT-B", 768) : ("DeiT-S", 384)
            let cold = coldWeights ? 64 << 20 : 0
            for (rows, what) in [(197, "b1"), (1576, "b8"), (138, "idle b1 138 rows"), (68, "idle b1 68 rows")] {
                shapes.append(("\(name) qkv \(what)", .init(rows: rows, inFeatures: c, outFeatures: 3 * c, coldBytes: cold)))
                shapes.append(("\(name) proj+res \(what)",
                               .init(rows: rows, inFeatures: c, outFeatures: c, epilogue: .residual, coldBytes: cold)))
                shapes.append(("\(name) fc1+gelu \(what)",
                               .init(rows: rows, inFeatures: c, outFeatures: 4 * c, epilogue: .gelu, coldBytes: cold)))
                shapes.append(("\(name) fc2+res \(what)",
                               .init(rows: rows, inFeatures: 4 * c, outFeatures: c, epilogue: .residual, coldBytes: cold)))
            }
        }
        return shapes
    }

    func attentionShapes() -> [(String, KernelBenchmark.Attention)] {
        var shapes: [(String, KernelBenchmark.Attention)] = []
        for model in models.split(separator: ",") {
            let (name, heads) = model == "b" ? ("DeiT-B", 12) : ("DeiT-S", 6)
            shapes.append(("\(name), 1", .init(batch: 1, tokens: 197, heads: heads)))
            shapes.append(("\(name), 8", .init(batch: 8, tokens: 197, heads: heads)))
            for tokens in [138, 97, 68] { shapes.append(("\(name) idle \(tokens) tokens, 1", .init(batch: 1, tokens: tokens, heads: heads))) }
        }
        return shapes
    }

    func cpuDescription() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "CPU: unknown" }
        func field(_ name: String) -> String {
            for line in text.split(separator: "\n") where line.hasPrefix(name) {
                return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            }
            return "?"
        }
        let flags = Set(field("flags").split(separator: " ").map(String.init))
        let shown = ["avx2", "fma", "avx512f", "avx512vl", "avx512bw"].map { flags.contains($0) ? $0 : "no \($0)" }
        return "CPU: \(field("model name")) (family \(field("cpu family")) model \(field("model"))), \(ProcessInfo.processInfo.activeProcessorCount) CPUs; "
            + shown.joined(separator: ", ")
    }

    func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    func fixed(_ value: Double, _ decimals: Int) -> String { String(format: "%.\(decimals)f", value) }
}
