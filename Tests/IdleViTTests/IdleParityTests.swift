import Foundation
import XCTest
import IR
@testable import IdleViTKit
@testable import Interpreter
@testable import Passes

/// The IdleViT rewrite against the Python reference (Fixtures/idlevit_reference.py), and the
/// exactness properties the algorithm promises.
final class IdleParityTests: XCTestCase {
    /// The cut-loss tensors an idle reference carries are reported once, grouped, not compared.
    func testUncomparedCutLossIsOneLine() throws {
        let result = try runIdleViT(["verify", TestPaths.fixture("tiny12/model.safetensors"), "--keep-ratio", "0.7",
                                     "--input", TestPaths.fixture("tiny12/input.safetensors"),
                                     "--reference", TestPaths.fixture("tiny12/idle-0.7.safetensors")])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n").filter { $0.hasPrefix("not compared:") }
        XCTAssertEqual(lines.count, 1, result.stdout)
        XCTAssertTrue(lines.first?.contains("27 tensors") == true && lines.first?.contains("--cut-loss") == true, result.stdout)
    }

    func testSelectionsBlocksAndLogitsMatchReferenceAtEachRatio() throws {
        for model in ParityTests.models {
            for ratio in ["0.5", "0.7", "0.9"] {
                let result = try runIdleViT(["verify", TestPaths.fixture("\(model)/model.safetensors"), "--keep-ratio", ratio,
                                             "--input", TestPaths.fixture("\(model)/input.safetensors"),
                                             "--reference", TestPaths.fixture("\(model)/idle-\(ratio).safetensors"), "--json"])
                XCTAssertEqual(result.status, 0, "\(model) r=\(ratio): \(result.stderr)\n\(result.stdout)")
                let json = try JSONParser.parse(result.stdout)
                let selections = json["selection"]?.arrayValue ?? []
                let depth = model == "tiny12" ? 12 : 4
                XCTAssertEqual(selections.count, depth - depth / 4, "\(model) r=\(ratio): every idle layer's selection compared")
                for selection in selections {
                    XCTAssertEqual(selection["agreement"]?.doubleValue, 1, "\(model) r=\(ratio) \(selection["name"]!)")
                }
                let logits = json["activations"]?.arrayValue?.first { $0["name"]?.stringValue == "logits" }
                XCTAssertLessThanOrEqual(logits?["max_abs_error"]?.doubleValue ?? 1, 1e-4, "\(model) r=\(ratio)")
            }
        }
    }

    func testTokenCutLossMatchesReference() throws {
        for model in ["micro", "micro-distilled"] {
            let result = try runIdleViT(["verify", TestPaths.fixture("\(model)/model.safetensors"), "--keep-ratio", "0.7", "--cut-loss",
                                         "--input", TestPaths.fixture("\(model)/input.safetensors"),
                                         "--reference", TestPaths.fixture("\(model)/idle-0.7.safetensors"), "--json"])
            XCTAssertEqual(result.status, 0, "\(model): \(result.stderr)\n\(result.stdout)")
            let json = try JSONParser.parse(result.stdout)
            let losses = (json["activations"]?.arrayValue ?? []).filter { $0["name"]?.stringValue?.contains(".cut_loss.") == true }
            XCTAssertEqual(losses.count, 9, "inter, intra, total for 3 idle layers")
            XCTAssertEqual(json["not_compared"]?.arrayValue?.count, 0)
        }
        let run = try runIdleViT(["run", TestPaths.fixture("micro/model.safetensors"), "--keep-ratio", "0.7", "--cut-loss",
                                  "--input", TestPaths.fixture("micro/input.safetensors")])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("token cut loss"), run.stdout)
    }

    func run(_ model: String, _ request: ModelRequest, capture: Capture = .all) throws -> (PreparedModel, [String: Activation]) {
        let prepared = try Session.prepare(request)
        let input = try Session.loadInput(path: TestPaths.fixture("\(model)/input.safetensors"), for: prepared.architecture)
        let interpreter = try Interpreter(graph: prepared.graph, threads: 2)
        return (prepared, try interpreter.run(["pixel_values": input], capture: capture))
    }

    func testKeepRatioOneIsTheDenseModelBitForBit() throws {
        for model in ParityTests.models {
            let path = TestPaths.fixture("\(model)/model.safetensors")
            let (_, dense) = try run(model, ModelRequest(path: path))
            let (prepared, idle) = try run(model, ModelRequest(path: path, keepRatio: 1))
            XCTAssertEqual(prepared.schedule?.kept.compactMap { $0 }.allSatisfy { $0 == prepared.architecture.patchCount }, true)
            for name in ["logits", "norm"] + (0..<prepared.architecture.depth).map({ "blocks.\($0)" }) {
                let a = dense[name]!.floatTensor!.values, b = idle[name]!.floatTensor!.values
                XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "\(model) \(name)")
            }
        }
    }

    func testIdleRowsLeaveABlockBitIdentical() throws {
        let model = "tiny12"
        let (prepared, out) = try run(model, ModelRequest(path: TestPaths.fixture("\(model)/model.safetensors"), keepRatio: 0.5))
        let a = prepared.architecture
        var checkedIdleRows = 0
        for layer in prepared.schedule!.idleLayers {
            guard case .indices(let shape, let selected)? = out["blocks.\(layer).selected"] else { return XCTFail("no selection for \(layer)") }
            let before = out["blocks.\(layer - 1)"]!.floatTensor!, after = out["blocks.\(layer)"]!.floatTensor!
            for b in 0..<shape[0] {
                let chosen = Set(selected[b * shape[1]..<(b + 1) * shape[1]].map(Int.init))
                XCTAssertTrue(chosen.isSuperset(of: 0..<a.prefixTokens), "class token always computed")
                for t in 0..<a.tokenCount {
                    let offset = (b * a.tokenCount + t) * a.embedDim
                    let x = UnsafeBufferPointer(start: before.pointer + offset, count: a.embedDim).map(\.bitPattern)
                    let y = UnsafeBufferPointer(start: after.pointer + offset, count: a.embedDim).map(\.bitPattern)
                    if chosen.contains(t) {
                        XCTAssertNotEqual(x, y, "layer \(layer) computed token \(t)")
                    } else {
                        XCTAssertEqual(x, y, "layer \(layer) idle token \(t) unchanged")
                        checkedIdleRows += 1
                    }
                }
            }
        }
        XCTAssertGreaterThan(checkedIdleRows, 1000)
    }

    func testRewriteShowsSelectionNodesAndRefusesBadSchedules() throws {
        let path = TestPaths.fixture("micro/model.safetensors")
        let graph = try runIdleViT(["inspect", path, "--graph", "--keep-ratio", "0.5"])
        XCTAssertEqual(graph.status, 0, graph.stderr)
        XCTAssertTrue(graph.stdout.contains("%blocks.1.selected: i32[B, 9] = token_select(%blocks.1.norm1, @blocks.1.attn.qkv.weight, @blocks.1.attn.qkv.bias) {heads: 2, keep: 8, prefix: 1}"), graph.stdout)
        XCTAssertTrue(graph.stdout.contains("%blocks.3: f32[B, 17, 128] = scatter_tokens(%blocks.2, %blocks.3.selected, %blocks.3.mlp_residual)"), graph.stdout)
        for (arguments, phrase) in [(["--keep-ratio", "0"], "outside (0, 1]"), (["--keep-ratio", "1.5"], "outside (0, 1]"),
                                    (["--keep-ratio", "0.5", "--idle-layers", "2-4"], "outside the model's layers 0-3"),
                                    (["--kept-tokens", "dense,8,4"], "3 entries for 4 layers"),
                                    (["--kept-tokens", "dense,8,4,17"], "keeps 17 tokens"),
                                    (["--kept-tokens", "dense,8,4,4", "--keep-ratio", "0.5"], "--kept-tokens cannot be combined"),
                                    (["--idle-layers", "1-3"], "--idle-layers needs --keep-ratio")] {
            let result = try runIdleViT(["stats", path] + arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(phrase), "\(arguments): \(result.stderr)")
        }
        let explicit = try runIdleViT(["run", path, "--kept-tokens", "dense,8,4,0", "--input", TestPaths.fixture("micro/input.safetensors")])
        XCTAssertEqual(explicit.status, 0, explicit.stderr)
        XCTAssertTrue(explicit.stdout.contains("kept tokens per layer: 0:dense 1:8 2:4 3:0"), explicit.stdout)
    }

    /// A plain checkpoint has no place for a schedule: asking for one is refused before any
    /// loading or writing; a bundle's stored schedule is dropped without complaint.
    func testConvertToSafetensorsRefusesAnIdleSchedule() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let plain = folder.appendingPathComponent("plain.safetensors").path
        let refused = try runIdleViT(["convert", TestPaths.fixture("micro/model.safetensors"), "--to", "safetensors",
                                      "--keep-ratio", "0.7", "-o", plain])
        XCTAssertEqual(refused.status, 2, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("cannot hold an idle schedule"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: plain))
        let bundle = folder.appendingPathComponent("b.idlevit.safetensors").path
        XCTAssertEqual(try runIdleViT(["convert", TestPaths.fixture("micro/model.safetensors"), "--keep-ratio", "0.7", "-o", bundle]).status, 0)
        let fromBundle = try runIdleViT(["convert", bundle, "--to", "safetensors", "-o", plain])
        XCTAssertEqual(fromBundle.status, 0, fromBundle.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: plain))
    }
}
