import Foundation
import XCTest
import IR
@testable import IdleViTKit
@testable import Interpreter
import Verification

/// Whole models through the engine: every family's fixture, dense and idle, on each
/// instruction set (fused and not, and the OpenBLAS engine) against PyTorch's activations;
/// logits-only runs (row demand); results independent of the thread count; and an instruction
/// set the CPU lacks refused with one line, never run. The kernels one by one: KernelTests.
final class EngineModelTests: XCTestCase {
    func testThreadCountDoesNotChangeResults() throws {
        let model = TestPaths.fixture("micro/model.safetensors")
        for isa in KernelISA.supported {
            let prepared = try Session.prepare(ModelRequest(path: model, keepRatio: 0.7))
            let input = try Session.loadInput(path: TestPaths.fixture("micro/input.safetensors"), for: prepared.architecture)
            var results: [[UInt32]] = []
            for threads in [1, 2] {
                let interpreter = try Interpreter(graph: prepared.graph, options: InterpreterOptions(threads: threads, isa: isa))
                results.append(try interpreter.run(["pixel_values": input])["logits"]!.floatTensor!.values.map(\.bitPattern))
            }
            XCTAssertEqual(results[0], results[1], "\(isa)")
        }
    }

    /// Every fixture, dense and idle, through each instruction set (fused and not, and the
    /// OpenBLAS engine) against PyTorch's activations, at verify's tolerance.
    func testFixturesMatchPyTorchWithEveryISA() throws {
        var configurations = KernelISA.supported.map { InterpreterOptions(isa: $0) }
        configurations.append(InterpreterOptions(isa: .portable, fuse: false, rowDemand: false))
        configurations.append(InterpreterOptions(matrixBackend: .openBLAS))
        try forEachParityFixture { name, prepared, input, references in
            for options in configurations {
                let interpreter = try Interpreter(graph: prepared.graph, options: options)
                let outputs = try interpreter.run(["pixel_values": input], capture: .names(Set(references.names)))
                let report = Verifier.compare(outputs, with: references, tolerance: Tolerance()) { name in
                    name.contains(".cut_loss.") ? "not computed here" : nil
                }
                let label = "\(name) \(options.isa?.rawValue ?? "best") \(options.matrixBackend) fuse \(options.fuse)"
                XCTAssertTrue(report.passed, "\(label): \(report.activations.filter { !$0.passed }.map(\.name)) \(report.selections.filter { !$0.passed }.map(\.name))")
                XCTAssertTrue(report.activations.contains { $0.name == "logits" }, label)
            }
        }
    }

    /// Asked for the logits only, the interpreter computes the last block's class rows alone
    /// (`RowDemand`: one query third of qkv, one row of proj and the MLP): the logits must
    /// still be PyTorch's, for every family's fixture, dense and idle, and on every
    /// instruction set (LV-ViT's auxiliary head reads every token: nothing is cut there).
    func testLogitsOnlyRunsMatchPyTorch() throws {
        let families = ParityTests.models.map { ($0, nil) } + [("deit3-micro", 2), ("vit-micro", 2), ("lvvit-micro", 2)]
        try forEachParityFixture(models: families) { name, prepared, input, references in
            let expected = try XCTUnwrap(references.floats.first { $0.0 == "logits" }?.1)
            for isa in KernelISA.supported {
                let interpreter = try Interpreter(graph: prepared.graph, options: InterpreterOptions(isa: isa))
                let logits = try XCTUnwrap(interpreter.run(["pixel_values": input])["logits"]?.floatTensor)
                let comparison = Verifier.compare(name: "logits", logits, expected, tolerance: Tolerance())
                XCTAssertTrue(comparison.passed, "\(name) \(isa): max abs error \(comparison.maxAbsError)")
            }
        }
    }

    /// The last block's fused qkv under row demand runs as keys and values for every row and
    /// queries for the class rows; with a bias-free qkv (LV-ViT's kind, whose auxiliary head
    /// keeps every row, so no fixture reaches this) the logits must be the ones computing every
    /// row gives, bit for bit: the same sums in the same order, on fewer rows.
    func testRowDemandWithABiasFreeQKV() throws {
        let prepared = try Session.prepare(ModelRequest(path: TestPaths.fixture("micro/model.safetensors")))
        var graph = prepared.graph
        var stripped = 0
        for attention in graph.nodes where attention.kind == .attention && attention.inputs.count == 1 {
            guard let qkv = graph.nodes.firstIndex(where: { $0.name == attention.inputs[0] }),
                  graph.nodes[qkv].kind == .linear, graph.nodes[qkv].inputs.count == 3 else { continue }
            graph.nodes[qkv].inputs.removeLast()
            stripped += 1
        }
        XCTAssertGreaterThan(stripped, 0, "no fused qkv with a bias in the fixture")
        let input = try Session.loadInput(path: TestPaths.fixture("micro/input.safetensors"), for: prepared.architecture)
        for isa in KernelISA.supported {
            func logits(rowDemand: Bool) throws -> [UInt32] {
                let interpreter = try Interpreter(graph: graph, options: InterpreterOptions(isa: isa, rowDemand: rowDemand))
                return try XCTUnwrap(interpreter.run(["pixel_values": input])["logits"]?.floatTensor).values.map(\.bitPattern)
            }
            XCTAssertEqual(try logits(rowDemand: true), try logits(rowDemand: false), "\(isa)")
        }
    }

    /// Each of `models` (fixture folders, with the attention heads where the checkpoint's dim
    /// does not say), dense and at r = 0.7: its label, prepared graph, input and PyTorch's
    /// activations.
    private func forEachParityFixture(models: [(String, Int?)] = ParityTests.models.map { ($0, nil) },
                                      _ body: (String, PreparedModel, FloatTensor, ReferenceSet) throws -> Void) throws {
        for (model, heads) in models {
            for ratio in [nil, "0.7"] {
                let path = TestPaths.fixture("\(model)/model.safetensors")
                let prepared = try Session.prepare(ModelRequest(path: path, heads: heads, keepRatio: ratio.flatMap(Double.init)))
                let input = try Session.loadInput(path: TestPaths.fixture("\(model)/input.safetensors"), for: prepared.architecture)
                let references = try ReferenceSet.load(path: TestPaths.fixture("\(model)/\(ratio.map { "idle-\($0)" } ?? "reference").safetensors"))
                try body("\(model) r=\(ratio ?? "dense")", prepared, input, references)
            }
        }
    }

    func testUnsupportedISAIsAnErrorNotACrash() throws {
        let prepared = try Session.prepare(ModelRequest(path: TestPaths.fixture("micro/model.safetensors")))
        for isa in KernelISA.allCases where !isa.isSupported {
            XCTAssertThrowsError(try Interpreter(graph: prepared.graph, options: InterpreterOptions(isa: isa))) { error in
                XCTAssertTrue("\(error)".contains("cannot run the \(isa.rawValue) kernels"), "\(error)")
            }
            let bench = try runIdleViT(["bench", TestPaths.fixture("micro/model.safetensors"), "--isa", isa.rawValue, "--runs", "1"])
            XCTAssertEqual(bench.status, 2, bench.stderr)
            XCTAssertEqual(bench.stderr.split(separator: "\n").count, 1, bench.stderr)
        }
        let bad = try runIdleViT(["bench", TestPaths.fixture("micro/model.safetensors"), "--isa", "sse9", "--runs", "1"])
        XCTAssertEqual(bad.status, 2, bad.stderr)
        let forced = try runIdleViT(["bench", TestPaths.fixture("micro/model.safetensors"), "--isa", "portable", "--runs", "1", "--json"])
        XCTAssertEqual(forced.status, 0, forced.stderr)
        XCTAssertEqual(try JSONParser.parse(forced.stdout)["isa"]?.stringValue, "portable")
    }
}
