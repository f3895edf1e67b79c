import Foundation
import XCTest

/// `verify` reports each idle layer's smallest selection margin (text and JSON). The smallest
/// over all layers must equal the one the fixture generator computed from PyTorch's scores
/// (Fixtures/manifest.json `smallest_margin`), and a selection that differs at a clear margin is
/// reported as a failure, not excused as a near tie.
final class SelectionMarginTests: XCTestCase {
    private func verifyJSON(_ model: String, ratio: String, reference: String) throws -> (Int32, [String: Any]) {
        let folder = TestPaths.fixture(model)
        let result = try runIdleViT(["verify", folder + "/model.safetensors", "--keep-ratio", ratio, "--json",
                                     "--input", folder + "/input.safetensors", "--reference", reference])
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        return (result.status, try XCTUnwrap(json, result.stdout + result.stderr))
    }

    func testSmallestMarginsMatchThePyTorchReference() throws {
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("manifest.json")))) as! [String: Any]
        let models = manifest["models"] as! [String: Any]
        for model in ["micro", "micro-distilled"] {
            let expected = (models[model] as! [String: Any])["smallest_margin"] as! [String: Double]
            for ratio in ["0.5", "0.7", "0.9"] {
                let (status, json) = try verifyJSON(model, ratio: ratio, reference: TestPaths.fixture("\(model)/idle-\(ratio).safetensors"))
                XCTAssertEqual(status, 0, "\(model) r=\(ratio)")
                let layers = try XCTUnwrap(json["selection_margins"] as? [[String: Any]])
                XCTAssertEqual(layers.map { $0["name"] as? String }, ["blocks.1.selected", "blocks.2.selected", "blocks.3.selected"])
                let smallest = layers.compactMap { $0["min_margin"] as? Double }.min()!
                let reference = expected[ratio]!
                // Our scores differ from PyTorch's by float32 rounding of the block inputs (~1e-6).
                XCTAssertEqual(smallest, reference, accuracy: 2e-6 + 1e-2 * reference, "\(model) r=\(ratio)")
                for selection in try XCTUnwrap(json["selection"] as? [[String: Any]]) {
                    XCTAssertNotNil(selection["min_margin"] as? Double, "\(model) r=\(ratio) \(selection)")
                }
            }
        }
    }

    func testAClearlyDifferentSelectionIsAFailureNotANearTie() throws {
        // micro r = 0.7, layer 1 keeps 11 of 16 image tokens: claim token 1 was left out and
        // another taken instead.
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (_, json) = try verifyJSON("micro", ratio: "0.7", reference: TestPaths.fixture("micro/idle-0.7.safetensors"))
        XCTAssertEqual(json["passed"] as? Bool, true)
        let referencePath = folder.appendingPathComponent("wrong-selection.safetensors").path
        let theirs: [[Int64]] = [[0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]]
        try writeInt64Safetensors(name: "blocks.1.selected", rows: theirs, to: referencePath)
        let (status, wrong) = try verifyJSON("micro", ratio: "0.7", reference: referencePath)
        XCTAssertEqual(status, 1)
        let selection = try XCTUnwrap((wrong["selection"] as? [[String: Any]])?.first)
        XCTAssertEqual(selection["passed"] as? Bool, false)
        XCTAssertTrue(selection["problem"] is NSNull, "a clear margin is no near tie: \(selection)")
        XCTAssertGreaterThan(try XCTUnwrap(selection["min_margin"] as? Double), 1e-5)
    }

    /// A safetensors file with one I64 tensor [rows, columns].
    private func writeInt64Safetensors(name: String, rows: [[Int64]], to path: String) throws {
        let values = rows.flatMap { $0 }
        let header = "{\"\(name)\":{\"dtype\":\"I64\",\"shape\":[\(rows.count),\(rows[0].count)],\"data_offsets\":[0,\(values.count * 8)]}}"
        var bytes = [UInt8]()
        var length = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { bytes += $0 }
        bytes += header.utf8
        for value in values {
            var v = value.littleEndian
            withUnsafeBytes(of: &v) { bytes += $0 }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}
