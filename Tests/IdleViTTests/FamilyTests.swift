import Foundation
import XCTest
import IR
import Importers
@testable import ModelDescription

/// The ViT-family variants besides DeiT (Fixtures/generate_families.py): DeiT-III (LayerScale,
/// positions for the patches only) and a timm ViT without qkv bias and with its own
/// preprocessing in a timm config.json. References come from timm (dense) and
/// Fixtures/idlevit_reference.py (IdleViT), never from idlevit.
final class FamilyTests: XCTestCase {
    /// Each family in every format it is stored in, dense and IdleViT at r = 0.5 and 0.7.
    func testEveryFormatMatchesTimmAndTheIdleReference() throws {
        let cases: [(folder: String, files: [String])] = [
            ("deit3-micro", ["model.safetensors", "model-facebook.safetensors", "model-opset17.onnx", "model-opset13.onnx", "weights.h5"]),
            ("vit-micro", ["model.safetensors", "model-opset17.onnx", "weights.h5"]),
        ]
        for (folder, files) in cases {
            let input = TestPaths.fixture("\(folder)/input.safetensors")
            for file in files {
                let model = TestPaths.fixture("\(folder)/\(file)")
                // dim 32 is not 64 x heads: safetensors and HDF5 need --heads, ONNX states it.
                let heads = file.hasSuffix(".onnx") ? [] : ["--heads", "2"]
                _ = try verify(model, reference: TestPaths.fixture("\(folder)/reference.safetensors"), input: input, extra: heads)
                for ratio in ["0.5", "0.7"] {
                    let json = try verify(model, reference: TestPaths.fixture("\(folder)/idle-\(ratio).safetensors"), input: input,
                                                 extra: heads + ["--keep-ratio", ratio])
                    let selections = json["selection"]?.arrayValue ?? []
                    XCTAssertEqual(selections.count, 3, "\(folder)/\(file) r=\(ratio): every idle layer compared")
                    for selection in selections {
                        XCTAssertEqual(selection["agreement"]?.doubleValue, 1, "\(folder)/\(file) r=\(ratio) \(selection["name"]!)")
                    }
                }
            }
        }
    }

    /// The recogniser reads DeiT-III from shapes: LayerScale from the gammas, patch-only
    /// positions from a pos_embed with Np rows; Facebook's gamma_1/gamma_2 names land on ls1/ls2.
    func testDeiT3IsRecognisedFromShapesUnderBothNamings() throws {
        let timm = try runIdleViT(["inspect", TestPaths.fixture("deit3-micro/model.safetensors"), "--heads", "2", "--json"])
        XCTAssertEqual(timm.status, 0, timm.stderr)
        let architecture = try XCTUnwrap(try JSONParser.parse(timm.stdout)["architecture"])
        XCTAssertEqual(architecture["layer_scale"], .bool(true))
        XCTAssertEqual(architecture["prefix_positions"], .bool(false))
        XCTAssertEqual(architecture["qkv_bias"], .bool(true))
        let facebook = try runIdleViT(["inspect", TestPaths.fixture("deit3-micro/model-facebook.safetensors"), "--heads", "2", "--json"])
        XCTAssertEqual(try JSONParser.parse(facebook.stdout)["architecture"], architecture)
        let graph = try runIdleViT(["inspect", TestPaths.fixture("deit3-micro/model.safetensors"), "--heads", "2", "--graph", "--keep-ratio", "0.7"])
        XCTAssertTrue(graph.stdout.contains("%patch_embed_pos: f32[B, 16, 32] = add(%patch_embed, @pos_embed)"), graph.stdout)
        XCTAssertTrue(graph.stdout.contains("%blocks.3.ls2: f32[B, 6, 32] = scale(%blocks.3.mlp.fc2, @blocks.3.ls2.gamma)"), graph.stdout)
    }

    /// A timm hub config.json sets the preprocessing (mean = std = 0.5, crop 0.9) and the
    /// class names; a bundle stores the preprocessing, so the bundle alone gives it back.
    func testConfigPreprocessingAndLabelsReachBundlesAndRun() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = TestPaths.fixture("vit-micro/model.safetensors")
        let inspect = try JSONParser.parse(try runIdleViT(["inspect", model, "--heads", "2", "--json"]).stdout)
        XCTAssertEqual(inspect["preprocessing"]?["mean"], .array([.double(0.5), .double(0.5), .double(0.5)]))
        XCTAssertEqual(inspect["preprocessing"]?["crop_pct"]?.doubleValue, 0.9)
        let bundle = folder.appendingPathComponent("vit.idlevit.safetensors").path
        let convert = try runIdleViT(["convert", model, "--heads", "2", "--keep-ratio", "0.7", "-o", bundle])
        XCTAssertEqual(convert.status, 0, convert.stderr)
        let reopened = try JSONParser.parse(try runIdleViT(["inspect", bundle, "--json"]).stdout)
        XCTAssertEqual(reopened["preprocessing"], inspect["preprocessing"], "the bundle (no config.json beside it) keeps them")
        // The bundle runs as stored and matches the idle reference.
        _ = try verify(bundle, reference: TestPaths.fixture("vit-micro/idle-0.7.safetensors"),
                                     input: TestPaths.fixture("vit-micro/input.safetensors"))
        let run = try runIdleViT(["run", model, "--heads", "2", "--input", TestPaths.fixture("vit-micro/input.safetensors"), "--top", "1"])
        XCTAssertTrue(run.stdout.contains("thing "), "class names from config.json's label_names: \(run.stdout)")
    }

    /// A DeiT-III bundle: LayerScale tensors in timm's state-dict order, stored graph used as is.
    func testDeiT3BundleRoundTrip() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let bundle = folder.appendingPathComponent("deit3.idlevit.safetensors").path
        let convert = try runIdleViT(["convert", TestPaths.fixture("deit3-micro/model-opset17.onnx"), "--keep-ratio", "0.5", "-o", bundle])
        XCTAssertEqual(convert.status, 0, convert.stderr)
        let file = try SafetensorsFile(path: bundle)
        XCTAssertEqual(Array(file.entries.map(\.name).prefix(12)),
                       ["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "blocks.0.norm1.weight",
                        "blocks.0.norm1.bias", "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias", "blocks.0.attn.proj.weight",
                        "blocks.0.attn.proj.bias", "blocks.0.ls1.gamma", "blocks.0.norm2.weight"], "timm's deit3 state-dict order")
        _ = try verify(bundle, reference: TestPaths.fixture("deit3-micro/idle-0.5.safetensors"),
                                     input: TestPaths.fixture("deit3-micro/input.safetensors"))
        // Another schedule on the bundle rewrites its dense graph.
        _ = try verify(bundle, reference: TestPaths.fixture("deit3-micro/idle-0.7.safetensors"),
                                     input: TestPaths.fixture("deit3-micro/input.safetensors"), extra: ["--keep-ratio", "0.7"])
    }

    /// LayerScale's multiplies count in the GMACs: 2 x N x C per dense block, 2 x S x C idle.
    func testStatsCountLayerScale() throws {
        let result = try runIdleViT(["stats", TestPaths.fixture("deit3-micro/model.safetensors"), "--heads", "2", "--keep-ratio", "0.5", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try JSONParser.parse(result.stdout)
        let layers = json["layers"]?.arrayValue ?? []
        // Block 0, dense: N = 17, C = 32, H = 128: (4 + 2*4) N C^2 + 2 N^2 C + 2 N C.
        let dense = Double(12 * 17 * 32 * 32 + 2 * 17 * 17 * 32 + 2 * 17 * 32) / 1e9
        XCTAssertEqual(layers.first { $0["name"]?.stringValue == "blocks.0" }?["gmacs"]?.doubleValue ?? 0, dense, accuracy: 1e-15)
        // Block 1 keeps 8: C^2 + N C^2 + N C + 3 S C^2 + 2 S C H + 2 S^2 C + 2 S C, S = 9.
        let idle = Double(32 * 32 + 17 * 32 * 32 + 17 * 32 + 3 * 9 * 32 * 32 + 2 * 9 * 32 * 128 + 2 * 81 * 32 + 2 * 9 * 32) / 1e9
        XCTAssertEqual(layers.first { $0["name"]?.stringValue == "blocks.1" }?["gmacs"]?.doubleValue ?? 0, idle, accuracy: 1e-15)
        XCTAssertEqual(json["parameters"]?.intValue, 58_186, "timm's parameter count of the fixture")
    }

    /// Block indices are bounded decimals: a huge index is one clear problem, not an overflow
    /// or a billion-entry table.
    func testBlockIndicesAreBounded() {
        let template: NameTemplate = "blocks.{i}.norm1.weight"
        XCTAssertEqual(template.match("blocks.11.norm1.weight"), .block(11))
        XCTAssertEqual(template.match("blocks.9223372036854775807.norm1.weight"), .badIndex("9223372036854775807"))
        XCTAssertEqual(template.match("blocks.1000000.norm1.weight"), .badIndex("1000000"))
        XCTAssertEqual(template.match("blocks.01.norm1.weight"), .badIndex("01"))
        XCTAssertNil(template.match("blocks.-1.norm1.weight"))
        XCTAssertNil(template.match("blocks..norm1.weight"))
        XCTAssertEqual(ActivationName("blocks.3.selected"), .selected(3))
        XCTAssertEqual(ActivationName("blocks.3"), .block(3))
        XCTAssertNil(ActivationName("blocks.99999999999999999999.selected"))
        XCTAssertEqual(ActivationName(ActivationName.blockPart(2, .layerScale1).name), .blockPart(2, .layerScale1))
    }
}
