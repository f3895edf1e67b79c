import Foundation
import XCTest
import IR

/// End to end: every fixture model and stored dtype through `idlevit verify` against the
/// activations timm computed (Fixtures/generate.py). Logits must agree to 1e-4 and every
/// activation within the default tolerance.
final class ParityTests: XCTestCase {
    static let models = ["micro", "micro-distilled", "tiny12"]

    func testFloat32CheckpointsMatchEveryActivation() throws {
        for model in Self.models {
            let json = try verify(TestPaths.fixture("\(model)/model.safetensors"), reference: TestPaths.fixture("\(model)/reference.safetensors"),
                                  input: TestPaths.fixture("\(model)/input.safetensors"))
            let names = Set((json["activations"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue })
            XCTAssertTrue(names.isSuperset(of: ["patch_embed", "pos_drop", "blocks.0", "norm", "logits"]), "\(model): \(names)")
        }
    }

    func testFloat16AndBFloat16Checkpoints() throws {
        for model in Self.models {
            for dtype in ["f16", "bf16"] {
                _ = try verify(TestPaths.fixture("\(model)/model-\(dtype).safetensors"),
                               reference: TestPaths.fixture("\(model)/reference-\(dtype).safetensors"),
                               input: TestPaths.fixture("\(model)/input.safetensors"))
            }
        }
    }

    func testHuggingFaceNamesWithConfig() throws {
        _ = try verify(TestPaths.fixture("micro-hf/model.safetensors"), reference: TestPaths.fixture("micro/reference.safetensors"),
                       input: TestPaths.fixture("micro/input.safetensors"))
        let inspect = try runIdleViT(["inspect", TestPaths.fixture("micro-hf/model.safetensors")])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("naming: huggingface"), inspect.stdout)
        XCTAssertTrue(inspect.stdout.contains("from config.json"), inspect.stdout)
    }

    func testInspectSaysWhereHeadsAndEpsCameFrom() throws {
        let onnx = try runIdleViT(["inspect", TestPaths.fixture("micro/model-opset13.onnx")])
        XCTAssertTrue(onnx.stdout.contains("heads: 2 from ONNX graph; layer norm eps: 1e-06 from ONNX graph"), onnx.stdout)
        let flag = try runIdleViT(["inspect", TestPaths.fixture("micro/model-opset13.onnx"), "--heads", "2"])
        XCTAssertTrue(flag.stdout.contains("heads: 2 from --heads"), flag.stdout)
        let plain = try runIdleViT(["inspect", TestPaths.fixture("micro/model.safetensors")])
        XCTAssertTrue(plain.stdout.contains("heads: 2 from dim / 64"), plain.stdout)
    }

    func testWrongReferenceExitsOneAndNamesTheActivation() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let wrong = folder.appendingPathComponent("wrong.safetensors").path
        try writePerturbedReference(from: TestPaths.fixture("micro/reference.safetensors"), perturbing: "blocks.2", to: wrong)
        let result = try runIdleViT(["verify", TestPaths.fixture("micro/model.safetensors"), "--input", TestPaths.fixture("micro/input.safetensors"),
                                     "--reference", wrong])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("blocks.2"), result.stderr)
        XCTAssertFalse(result.stderr.contains("blocks.1,"), "only the perturbed activation fails: \(result.stderr)")
        let row = result.stdout.split(separator: "\n").first { $0.hasPrefix("blocks.2 ") }
        XCTAssertTrue(row?.hasSuffix("FAIL") == true, "table marks it: \(row ?? "")")
    }

    func testVerifyWithoutMatchingNamesFails() throws {
        let result = try runIdleViT(["verify", TestPaths.fixture("micro/model.safetensors"), "--input", TestPaths.fixture("micro/input.safetensors"),
                                     "--reference", TestPaths.fixture("micro/idle-0.7.safetensors")])
        XCTAssertEqual(result.status, 1, "a dense run cannot match idle selections: \(result.stderr)")
        XCTAssertTrue(result.stdout.contains("is --keep-ratio set?"), result.stdout)
    }
}

/// Copies a reference file, adding 1e-2 to one activation.
func writePerturbedReference(from source: String, perturbing name: String, to path: String) throws {
    let bytes = try Data(contentsOf: URL(fileURLWithPath: source))
    var length: UInt64 = 0
    for i in 0..<8 { length |= UInt64(bytes[i]) << (8 * UInt64(i)) }
    let header = try JSONParser.parse(Array(bytes[8..<8 + Int(length)]))
    guard let entry = header[name], entry["dtype"]?.stringValue == "F32",
          let offsets = entry["data_offsets"]?.arrayValue?.compactMap(\.intValue) else {
        throw NSError(domain: "test", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(name) not an F32 entry"])
    }
    var copy = bytes
    let start = 8 + Int(length) + offsets[0]
    for i in stride(from: start, to: 8 + Int(length) + offsets[1], by: 4) {
        let value = copy[i..<i + 4].withUnsafeBytes { $0.loadUnaligned(as: Float.self) } + 0.01
        withUnsafeBytes(of: value) { copy.replaceSubrange(i..<i + 4, with: $0) }
    }
    try copy.write(to: URL(fileURLWithPath: path))
}
