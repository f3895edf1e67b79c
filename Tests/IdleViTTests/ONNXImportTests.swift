import Foundation
import XCTest
import IR
import Importers
import ONNXImporter
import IdleViTKit

/// ONNX exports of the fixture models (torch.onnx.export, opsets 13 and 17, external data,
/// the dynamo exporter): weights equal to the safetensors fixtures bit for bit once renamed
/// and transposed, the same architecture, parity through `idlevit verify`, and hostile files
/// rejected with one clear line, never a crash.
final class ONNXImportTests: XCTestCase {
    struct Fixture {
        var onnx: String
        var folder: String
    }

    static let fixtures = [
        Fixture(onnx: "micro/model-opset13.onnx", folder: "micro"),
        Fixture(onnx: "micro/external/model.onnx", folder: "micro"),
        Fixture(onnx: "micro-distilled/model-opset17.onnx", folder: "micro-distilled"),
        Fixture(onnx: "micro-distilled/model-opset13.onnx", folder: "micro-distilled"),
        Fixture(onnx: "micro-distilled/model-dynamo.onnx", folder: "micro-distilled"),
    ]

    func testFixturesExist() {
        for fixture in Self.fixtures {
            XCTAssertTrue(FileManager.default.fileExists(atPath: TestPaths.fixture(fixture.onnx)), "missing fixture \(fixture.onnx)")
        }
    }

    func testWeightsEqualTheSafetensorsFixturesBitForBit() throws {
        for fixture in Self.fixtures {
            let imported = try ONNXImporter.load(path: TestPaths.fixture(fixture.onnx))
            let expected = try SafetensorsFile(path: TestPaths.fixture(fixture.folder + "/model.safetensors")).weightSet()
            assertSameWeights(imported.weights, expected, fixture.onnx)
        }
    }

    func testArchitectureHeadsAndEpsilonComeFromTheGraph() throws {
        for fixture in Self.fixtures {
            let imported = try ONNXImporter.load(path: TestPaths.fixture(fixture.onnx))
            XCTAssertNotNil(imported.options.heads, fixture.onnx)
            XCTAssertEqual(imported.options.layerNormEps, 1e-6, fixture.onnx)
            XCTAssertGreaterThanOrEqual(imported.opset, 13, fixture.onnx)
            let fromONNX = try ModelLoader.load(TestPaths.fixture(fixture.onnx)).recognized.architecture
            let fromSafetensors = try ModelLoader.load(TestPaths.fixture(fixture.folder + "/model.safetensors")).recognized.architecture
            XCTAssertEqual(fromONNX, fromSafetensors, fixture.onnx)
            XCTAssertEqual(fromONNX.heads, imported.options.heads, fixture.onnx)
        }
    }

    func testVerifyPassesOnEveryExport() throws {
        for fixture in Self.fixtures {
            let folder = TestPaths.fixture(fixture.folder)
            let result = try runIdleViT(["verify", TestPaths.fixture(fixture.onnx), "--input", folder + "/input.safetensors",
                                         "--reference", folder + "/reference.safetensors"])
            XCTAssertEqual(result.status, 0, "\(fixture.onnx): \(result.stdout)\(result.stderr)")
            XCTAssertTrue(result.stdout.contains("logits"), fixture.onnx)
        }
    }

    func testInspectShowsOpHistogramAndArchitecture() throws {
        let result = try runIdleViT(["inspect", TestPaths.fixture("micro/model-opset13.onnx")])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("opset 13"), result.stdout)
        XCTAssertTrue(result.stdout.contains("ReduceMean 18"), result.stdout)
        XCTAssertTrue(result.stdout.contains("MatMul 24"), result.stdout)
        XCTAssertTrue(result.stdout.contains("depth 4"), result.stdout)
        XCTAssertTrue(result.stdout.contains("onnx::MatMul_"), "initializers as stored: \(result.stdout)")
        let external = try runIdleViT(["inspect", TestPaths.fixture("micro/external/model.onnx")])
        XCTAssertEqual(external.status, 0, external.stderr)
        XCTAssertTrue(external.stdout.contains("external model.onnx.data ("), external.stdout)
    }

    func testConvertToSafetensorsWritesTimmNamesAndValues() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("from-onnx.safetensors").path
        let result = try runIdleViT(["convert", TestPaths.fixture("micro/external/model.onnx"), "-o", out, "--to", "safetensors"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let written = try SafetensorsFile(path: out).weightSet()
        let expected = try SafetensorsFile(path: TestPaths.fixture("micro/model.safetensors")).weightSet()
        assertSameWeights(written, expected, "ONNX -> safetensors")
    }
}
