import Foundation
import XCTest
import IR
import Importers
import IdleViTKit
import ONNXImporter
@testable import ONNXExporter

/// `convert --to onnx`: dense exports read back by idlevit's own ONNX importer with the same
/// weights bit for bit and PyTorch parity through `verify`; the IdleViT graph's contract
/// (outputs, types, symbolic batch, TopK per idle layer with the schedule's K); keep ratio 1
/// exports the dense graph; bad options exit 2 with one line. ONNX Runtime runs the exports in
/// Fixtures/check_onnx_export.py (CI), which compares them with the PyTorch references.
final class ONNXExportTests: XCTestCase {
    private var folder: URL!

    override func setUp() {
        folder = TestPaths.temporaryFolder()
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: folder)
    }

    private func export(_ model: String, _ name: String, _ flags: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let path = folder.appendingPathComponent(name).path
        let result = try runIdleViT(["convert", TestPaths.fixture(model), "--to", "onnx", "-o", path] + flags)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr, file: file, line: line)
        return path
    }

    private func draft(_ model: String, keepRatio: Double?, selectionOutputs: Bool = true) throws -> ONNXModelDraft {
        let prepared = try Session.prepare(ModelRequest(path: TestPaths.fixture(model), keepRatio: keepRatio))
        return try ONNXExporter.model(prepared.graph, options: ONNXExportOptions(selectionOutputs: selectionOutputs))
    }

    func testDenseExportsReadBackWithTheSameWeightsAndPyTorchParity() throws {
        // DeiT-III (LayerScale, patch-only positions) and ViT without qkv bias have dim 32 and 2
        // heads, which the safetensors file cannot say (the exported graph does).
        let cases: [(String, [String])] = [("micro", []), ("micro-distilled", []), ("micro", ["--external-data"]),
                                           ("micro-distilled", ["--opset", "21"]), ("deit3-micro", ["--heads", "2"]), ("vit-micro", ["--heads", "2"])]
        for (fixture, flags) in cases {
            let path = try export(fixture + "/model.safetensors", "\(fixture)\(flags.joined()).onnx", flags)
            let imported = try ONNXImporter.load(path: path)
            let expected = try SafetensorsFile(path: TestPaths.fixture(fixture + "/model.safetensors")).weightSet()
            assertSameWeights(imported.weights, expected, "\(fixture) \(flags)")
            let verify = try runIdleViT(["verify", path, "--input", TestPaths.fixture(fixture + "/input.safetensors"),
                                         "--reference", TestPaths.fixture(fixture + "/reference.safetensors")])
            XCTAssertEqual(verify.status, 0, "\(fixture) \(flags): \(verify.stdout)\(verify.stderr)")
            if flags == ["--external-data"] {
                let data = path + ".data"
                XCTAssertTrue(FileManager.default.fileExists(atPath: data))
                let external = imported.initializers.filter { $0.storage.hasPrefix("external") }
                XCTAssertGreaterThan(external.count, 0)
                // Relative to the model: the data file's own name, no folder.
                XCTAssertTrue(external.allSatisfy { $0.storage == "external " + displayName(data) }, "\(external.map(\.storage))")
                let modelBytes = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
                XCTAssertLessThan(modelBytes, 100_000, "the weights belong in the data file")
            }
        }
    }

    func testWeightsMoveToExternalDataWhenOneFileWouldBeTooLarge() throws {
        let model = try draft("micro/model.safetensors", keepRatio: nil)
        let small = folder.appendingPathComponent("small-limit.onnx").path
        // micro is 3.3 MB: with the limit at 1 MB instead of protobuf's 2 GB, the weights move out.
        let moved = try ModelFileWriter.write(model, to: small, externalData: .whenNeeded, singleFileLimit: 1 << 20)
        XCTAssertEqual(moved.dataFile?.path, small + ".data")
        XCTAssertLessThan(moved.modelBytes, 1 << 20)
        let kept = try ModelFileWriter.write(model, to: folder.appendingPathComponent("big-limit.onnx").path, externalData: .whenNeeded)
        XCTAssertNil(kept.dataFile)
        XCTAssertGreaterThan(kept.modelBytes, 3_000_000)
        // Every weight of 1 KB or more is external, and the model reads back with the same weights.
        let external = try ONNXImporter.load(path: small)
        assertSameWeights(external.weights, try SafetensorsFile(path: TestPaths.fixture("micro/model.safetensors")).weightSet(), "external")
        XCTAssertEqual(Set(external.initializers.filter { $0.bytes >= 1024 && $0.storage != "raw_data" }.map(\.name)),
                       Set(external.initializers.filter { $0.bytes >= 1024 }.map(\.name)))
    }

    func testIdleGraphContract() throws {
        // K per idle layer of a 196-patch DeiT at r = 0.7 (IDLEVIT.md §2).
        let expectedKeep = [3: 137, 4: 137, 5: 137, 6: 96, 7: 96, 8: 96, 9: 67, 10: 67, 11: 67]
        let model = try draft("tiny12/model.safetensors", keepRatio: 0.7)
        let graph = model.graph
        XCTAssertEqual(model.opset, 17)
        XCTAssertEqual(graph.inputs.map(\.name), ["pixel_values"])
        XCTAssertEqual(graph.inputs[0].shape, [.parameter("batch"), .value(3), .value(224), .value(224)])
        XCTAssertEqual(graph.outputs.map(\.name), ["logits"] + (3...11).map { "blocks.\($0).selected" })
        XCTAssertEqual(graph.outputs[0].shape, [.parameter("batch"), .value(1000)])
        XCTAssertEqual(graph.outputs[0].elementType, .float)
        for output in graph.outputs.dropFirst() {
            let layer = Int(output.name.split(separator: ".")[1])!
            XCTAssertEqual(output.elementType, .int64, output.name)
            XCTAssertEqual(output.shape, [.parameter("batch"), .value(1 + expectedKeep[layer]!)], output.name)
        }
        let constants = Dictionary(graph.initializers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let topK = graph.nodes.filter { $0.opType == "TopK" }
        XCTAssertEqual(topK.count, 9)
        for node in topK {
            let layer = Int(node.name.split(separator: ".")[1])!
            XCTAssertTrue(node.attributes.contains { $0.name == "largest" && $0.value == .int(1) }, node.name)
            XCTAssertTrue(node.attributes.contains { $0.name == "sorted" && $0.value == .int(1) }, node.name)
            guard case .int64s(let k)? = constants[node.inputs[1]]?.payload else { return XCTFail("\(node.name): K is not a constant") }
            XCTAssertEqual(k, [Int64(expectedKeep[layer]!)], node.name)
            // Scores in double precision: the values TopK ranks come from a double MatMul.
            XCTAssertTrue(graph.nodes.contains { $0.opType == "Cast" && $0.outputs[0] == "blocks.\(layer).selected/tokens_f64"
                && $0.attributes.contains { $0.name == "to" && $0.value == .int(11) } }, node.name)
        }
        // Nothing sized by a batch known at export: every Reshape target leaves the batch to -1,
        // and every Expand target is built from the Shape of a runtime value.
        for node in graph.nodes where node.opType == "Reshape" {
            guard case .int64s(let shape)? = constants[node.inputs[1]]?.payload else { return XCTFail("\(node.name): shape not constant") }
            XCTAssertEqual(shape.first, -1, node.name)
        }
        let computed = Set(graph.nodes.flatMap(\.outputs))
        for node in graph.nodes where node.opType == "Expand" {
            XCTAssertTrue(computed.contains(node.inputs[1]), "\(node.name): target shape \(node.inputs[1]) is a constant")
        }
        // Node names follow the IR's: each block's output keeps its timm name.
        for layer in 0..<12 { XCTAssertTrue(computed.contains("blocks.\(layer)"), "blocks.\(layer)") }
        XCTAssertTrue(graph.initializers.contains { $0.name == "blocks.3.attn.qkv.weight" })
    }

    func testKeepRatioOneExportsTheDenseGraph() throws {
        let dense = try draft("micro/model.safetensors", keepRatio: nil)
        let one = try draft("micro/model.safetensors", keepRatio: 1)
        XCTAssertEqual(one.graph.nodes.map(\.opType), dense.graph.nodes.map(\.opType))
        XCTAssertEqual(one.graph.nodes.map(\.outputs), dense.graph.nodes.map(\.outputs))
        XCTAssertEqual(one.graph.outputs.map(\.name), ["logits"])
        XCTAssertFalse(one.graph.nodes.contains { $0.opType == "TopK" })
    }

    func testDistilledLogitsAreTheMeanOfBothHeads() throws {
        let graph = try draft("micro-distilled/model.safetensors", keepRatio: 0.5).graph
        let logits = try XCTUnwrap(graph.nodes.first { $0.outputs == ["logits"] })
        XCTAssertEqual(logits.opType, "Div")
        let sum = try XCTUnwrap(graph.nodes.first { $0.outputs == [logits.inputs[0]] })
        XCTAssertEqual(sum.opType, "Add")
        XCTAssertEqual(Set(sum.inputs), ["head", "head_dist"])
        // Both prefix tokens are always selected: the selection starts with [[0, 1]] expanded over the batch.
        let selected = try XCTUnwrap(graph.nodes.first { $0.outputs == ["blocks.1.selected"] })
        XCTAssertEqual(selected.opType, "Concat")
        let prefix = try XCTUnwrap(graph.nodes.first { $0.outputs == [selected.inputs[0]] })
        XCTAssertEqual(prefix.opType, "Expand")
        let constant = try XCTUnwrap(graph.initializers.first { $0.name == prefix.inputs[0] })
        guard case .int64s(let values) = constant.payload else { return XCTFail("prefix is not int64") }
        XCTAssertEqual(values, [0, 1])
        XCTAssertEqual(constant.dims, [1, 2])
    }

    func testExportIsDeterministic() throws {
        let first = try export("micro/model.safetensors", "a.onnx", ["--keep-ratio", "0.5", "--selection-outputs"])
        let second = try export("micro/model.safetensors", "b.onnx", ["--keep-ratio", "0.5", "--selection-outputs"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: first)), try Data(contentsOf: URL(fileURLWithPath: second)))
    }

    func testBadOptionsExitTwo() throws {
        let model = TestPaths.fixture("micro/model.safetensors")
        let out = folder.appendingPathComponent("x.onnx").path
        let cases: [[String]] = [
            ["--to", "onnx", "--opset", "16"],
            ["--to", "onnx", "--opset", "22"],
            ["--to", "onnx", "--dtype", "f16"],
            ["--to", "bundle", "--selection-outputs"],
            ["--external-data"],
            ["--to", "onnx", "--keep-ratio", "1.5"],
        ]
        for flags in cases {
            let result = try runIdleViT(["convert", model, "-o", out] + flags)
            XCTAssertEqual(result.status, 2, "\(flags): \(result.stdout)\(result.stderr)")
            // One line saying what is wrong (argument parsing adds its usage hint below it).
            XCTAssertTrue(result.stderr.hasPrefix("idlevit: error: -"), "\(flags): \(result.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(flags)")
        }
        let missing = folder.appendingPathComponent("no/such/folder/x.onnx").path
        let result = try runIdleViT(["convert", model, "--to", "onnx", "-o", missing])
        XCTAssertEqual(result.status, 2, result.stdout + result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [], "no temporary file left behind")
    }
}
