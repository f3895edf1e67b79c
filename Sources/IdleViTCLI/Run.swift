import ArgumentParser
import Foundation
import IR
import IdleViTKit
import Interpreter

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the model on an input batch and print logits and the top-K classes.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var idle: IdleOptions

    @Option(help: "Input safetensors with 'pixel_values' [B, 3, H, W].")
    var input: String

    @Option(help: "Classes to show per image.")
    var top: Int = 5

    @Option(help: "Class names, one per line.")
    var labels: String?

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    func run() throws {
        guard top > 0 else { throw CLIError.invalid("--top must be positive") }
        let prepared = try model.prepare(idle)
        let pixels: FloatTensor
        do { pixels = try Session.loadInput(path: input, for: prepared.architecture) } catch { throw CLIError.invalid(error.description) }
        var names: [String]?
        if let labels {
            guard let text = try? String(contentsOfFile: labels, encoding: .utf8) else { throw CLIError.invalid("\(labels): cannot read the label file") }
            names = text.split(separator: "\n", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) }
            if names?.last == "" { names?.removeLast() }
        }
        let capture = Set((prepared.schedule?.idleLayers ?? []).map { "blocks.\($0).selected" })
        let outputs: [String: Activation]
        do {
            let interpreter = try Interpreter(graph: prepared.graph, threads: threads)
            outputs = try interpreter.run(["pixel_values": pixels], capture: .names(capture))
        } catch {
            throw CLIError.invalid("\(error)")
        }
        let logits = outputs["logits"]!.floatTensor!
        let (batch, classes) = (logits.shape[0], logits.shape[1])
        var images: [JSONValue] = []
        for b in 0..<batch {
            let row = Array(UnsafeBufferPointer(start: logits.pointer + b * classes, count: classes))
            let maximum = row.max() ?? 0
            let exps = row.map { Foundation.exp(Double($0 - maximum)) }
            let total = exps.reduce(0, +)
            let ranked = row.indices.sorted { row[$0] != row[$1] ? row[$0] > row[$1] : $0 < $1 }.prefix(top)
            let entries = ranked.map { (index: $0, logit: row[$0], probability: exps[$0] / total, label: names?[safe: $0]) }
            if model.json {
                images.append(.object([
                    ("logits", .array(row.map { .double(Double($0)) })),
                    ("top", .array(entries.map { e in
                        .object([("class", .int(e.index)), ("label", e.label.map(JSONValue.string) ?? .null),
                                 ("logit", .double(Double(e.logit))), ("probability", .double(e.probability))])
                    })),
                ]))
            } else {
                print("image \(b):")
                for e in entries {
                    print("  \(String(format: "%5d", e.index))  \(fixed(Double(e.logit), 4))  p=\(fixed(e.probability, 4))\(e.label.map { "  " + $0 } ?? "")")
                }
            }
        }
        let kept = (prepared.schedule?.kept ?? []).map { $0.map(JSONValue.int) ?? .null }
        if model.json {
            printJSON(.object([("images", .array(images)), ("kept_tokens", .array(kept))]))
        } else if let schedule = prepared.schedule {
            print("kept tokens per layer: \(schedule)")
        }
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
