import ArgumentParser
import Foundation
import IR
import IdleViTKit
import ModelDescription
import Importers
import Interpreter
import Verification

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the model and compare every activation named in a PyTorch reference file.",
        discussion: "Exits 0 when everything is within tolerance, 1 when something is not, 2 on invalid input, including a reference that names nothing the model computes (there is nothing to verify).")

    @OptionGroup var model: ModelOptions
    @OptionGroup var idle: IdleOptions

    @Option(help: "Input safetensors with 'pixel_values' [B, 3, H, W].")
    var input: String

    @Option(help: "Reference safetensors: activations by timm module name (patch_embed, pos_drop, blocks.{i}, norm, logits, blocks.{i}.selected).")
    var reference: String

    @Option(help: "Absolute tolerance.")
    var atol: Double = 1e-4

    @Option(help: "Relative tolerance, times max |reference| of each activation.")
    var rtol: Double = 1e-4

    @OptionGroup var execution: ExecutionOptions

    @Flag(name: .customLong("cut-loss"), help: "Also compute the token cut loss of each idle layer and compare it with the reference's blocks.{i}.cut_loss.*.")
    var cutLoss = false

    func validate() throws {
        guard atol >= 0, rtol >= 0, atol.isFinite, rtol.isFinite else {
            throw ValidationError("--atol and --rtol must be finite and non-negative")
        }
    }

    func run() throws {
        let prepared = try model.prepare(idle)
        let runner = try execution.runner(prepared)
        let pixels = try loadInputChecked(input, prepared: prepared, runner: runner, execution: execution)
        let references: ReferenceSet
        do {
            references = try ReferenceSet.load(path: reference, maximumConvertedBytes: execution.memoryBudget)
        } catch {
            throw CLIError.invalid("\(error)")
        }
        var outputs: [String: Activation]
        let idleLayers = prepared.schedule?.effective.idleLayers ?? []
        var capture = Set(references.names)
        if cutLoss { capture.formUnion(TokenCutLoss.requiredActivations(layers: idleLayers)) }
        capture.formUnion(SelectionMargins.requiredActivations(graph: prepared.graph))
        do {
            outputs = try runner.run(pixels: pixels, captureNames: capture)
        } catch {
            throw CLIError.invalid("\(displayName(input)): \(error)")
        }
        if cutLoss {
            for (layer, values) in TokenCutLoss.compute(graph: prepared.graph, activations: outputs, layers: idleLayers) {
                outputs.merge(TokenCutLoss.activations(layer: layer, values)) { $1 }
            }
        }
        let margins = SelectionMargins.compute(graph: prepared.graph, activations: outputs)
        let checkCutLoss = cutLoss
        var report = Verifier.compare(outputs, with: references, tolerance: Tolerance(absolute: atol, relative: rtol)) { name in
            guard !checkCutLoss, case .blockPart(_, let part)? = ActivationName(name),
                  [.cutLoss, .cutLossInter, .cutLossIntra].contains(part) else { return nil }
            return "token cut loss diagnostic: pass --cut-loss to check it"
        }
        // A reference naming nothing we compute would "pass" 0 of 0 checks: that is an unusable
        // input (exit 2), not a verified model (0) nor a numeric mismatch (1).
        let comparable = report.activations.filter { outputs[$0.name] != nil }.count + report.selections.filter { outputs[$0.name] != nil }.count
        if comparable == 0 {
            let names = references.names
            let found = names.isEmpty ? "it holds no tensors"
                : "none of its \(names.count) tensors (\(names.prefix(3).map { "'\($0.escapedForMessage)'" }.joined(separator: ", "))\(names.count > 3 ? ", ..." : "")) names an activation this model computes"
            throw CLIError.invalid("\(displayName(reference)): nothing to compare: \(found) (expected names like logits, norm, blocks.0)")
        }
        // Rows in the order the graph computes them, not the reference file's order.
        let position = Dictionary(prepared.graph.nodes.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        report.activations.sort { (position[$0.name] ?? Int.max, $0.name) < (position[$1.name] ?? Int.max, $1.name) }
        report.selections.sort { (position[$0.name] ?? Int.max, $0.name) < (position[$1.name] ?? Int.max, $1.name) }
        let marginOf = Dictionary(margins.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for (i, selection) in report.selections.enumerated() where !selection.passed && selection.problem == nil {
            // Say whether a differing selection is a near tie or a bug.
            if let smallest = marginOf[selection.name]?.smallest, smallest < SelectionMargins.nearTie {
                report.selections[i].problem = "near tie: smallest margin \(scientific(smallest))"
            }
        }
        if model.json {
            printJSON(.object([
                ("passed", .bool(report.passed)),
                ("tolerance", .object([("atol", .double(atol)), ("rtol", .double(rtol))])),
                ("activations", .array(report.activations.map { a in
                    .object([("name", .string(a.name)), ("shape", .array(a.shape.map(JSONValue.int))),
                             ("max_abs_error", jsonNumber(a.maxAbsError)), ("max_rel_error", jsonNumber(a.maxRelError)),
                             ("cosine", jsonNumber(a.cosine)), ("passed", .bool(a.passed)),
                             ("problem", a.problem.map(JSONValue.string) ?? .null)])
                })),
                ("selection", .array(report.selections.map { s in
                    .object([("name", .string(s.name)), ("agreement", .double(s.agreement)), ("differing_tokens", .int(s.differingTokens)),
                             ("min_margin", marginOf[s.name]?.smallest.map(jsonNumber) ?? .null),
                             ("passed", .bool(s.passed)), ("problem", s.problem.map(JSONValue.string) ?? .null)])
                })),
                ("selection_margins", .array(margins.map { m in
                    .object([("name", .string(m.name)), ("kept_tokens", .int(m.keep)),
                             ("min_margin", m.smallest.map(jsonNumber) ?? .null), ("image", m.image.map(JSONValue.int) ?? .null)])
                })),
                ("not_compared", .array(report.notCompared.map { .object([("name", .string($0.0)), ("reason", .string($0.1))]) })),
            ]))
        } else {
            printReport(report, margins: margins, prepared: prepared)
        }
        if !report.passed {
            let failed = report.activations.filter { !$0.passed }.map(\.name) + report.selections.filter { !$0.passed }.map(\.name)
            throw CLIError.mismatch("verification failed: \(failed.count) of \(report.activations.count + report.selections.count) checks differ from the reference: \(failed.prefix(8).joined(separator: ", "))\(failed.count > 8 ? ", ..." : "")")
        }
    }

    private func printReport(_ report: VerificationReport, margins: [SelectionMargins.Layer], prepared: PreparedModel) {
        print("model:     \(displayName(prepared.loaded.path)) (\(prepared.loaded.format.displayName)), \(prepared.modelName)")
        if let schedule = prepared.schedule { print("schedule:  \(schedule)") }
        print("reference: \(displayName(reference)), tolerance: |ours - ref| <= \(atol) + \(rtol) x max|ref|\n")
        var table = Table(headers: ["activation", "shape", "max abs err", "max rel err", "cosine", "result"], rightAligned: [2, 3, 4])
        for a in report.activations {
            table.add([a.name, describeShape(a.shape), scientific(a.maxAbsError), scientific(a.maxRelError), fixed(a.cosine, 7),
                       a.passed ? "pass" : "FAIL" + (a.problem.map { ": " + $0 } ?? "")])
        }
        print(table.render(), terminator: "")
        if !report.selections.isEmpty {
            var selections = Table(headers: ["selection", "images agreeing", "tokens differing", "result"], rightAligned: [1, 2])
            for s in report.selections {
                selections.add([s.name, "\(Int((s.agreement * Double(s.images)).rounded()))/\(s.images)", String(s.differingTokens),
                                s.passed ? "pass" : "FAIL" + (s.problem.map { ": " + $0 } ?? "")])
            }
            print()
            print(selections.render(), terminator: "")
        }
        if !margins.isEmpty {
            // How close each layer came to a tie: a differing selection at a margin below ~1e-5
            // is rounding deciding a near tie, at a larger margin a bug.
            var table = Table(headers: ["selection", "kept", "smallest margin", "image"], rightAligned: [1, 2, 3])
            for m in margins {
                table.add([m.name, String(m.keep), m.smallest.map(scientific) ?? "-", m.image.map(String.init) ?? "-"])
            }
            print()
            print(table.render(), terminator: "")
        }
        // One line per reason: an idle reference carries 27 cut-loss tensors for DeiT-S alone.
        var reasons: [String] = []
        var names: [String: [String]] = [:]
        for (name, reason) in report.notCompared {
            if names[reason] == nil { reasons.append(reason) }
            names[reason, default: []].append(name)
        }
        for reason in reasons {
            let listed = names[reason]!
            let which = listed.count <= 3 ? listed.joined(separator: ", ")
                                          : "\(listed.count) tensors (\(listed.first!) ... \(listed.last!))"
            print("not compared: \(which): \(reason)")
        }
        let checks = report.activations.count + report.selections.count
        let failures = report.activations.filter { !$0.passed }.count + report.selections.filter { !$0.passed }.count
        print("\n\(report.passed ? "PASSED" : "FAILED"): \(checks - failures) of \(checks) checks within tolerance")
    }
}
