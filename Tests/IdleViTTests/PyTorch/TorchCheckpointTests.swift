import Foundation
import XCTest
import IR
@testable import Importers
import IdleViTKit

/// `torch.save` files of the micro-distilled fixture in every layout (Fixtures/generate_pth.py)
/// through the CLI: parity with the committed timm references, state-dict selection, the
/// checkpoint's other contents in `inspect`, and every command accepting them.
final class TorchCheckpointTests: XCTestCase {
    static let folder = "micro-distilled"

    /// Each layout with its reference (the weights are the committed safetensors' values) and
    /// the flags it needs.
    static let layouts: [(file: String, reference: String, flags: [String])] = [
        ("pth/micro-distilled-plain.pth", "reference.safetensors", []),
        ("pth/micro-distilled-model-legacy.pth", "reference.safetensors", []),
        ("pth/micro-distilled-state_dict-f16.pth", "reference-f16.safetensors", []),
        ("pth/micro-distilled-ema-bf16.pth", "reference-bf16.safetensors", ["--key", "model_ema"]),
        ("pth/micro-distilled-training.pth", "reference.safetensors", []),
        ("pth/micro-distilled-views.pth", "reference.safetensors", []),
        ("pth/hf/pytorch_model.bin", "reference.safetensors", []),
    ]

    static func input() -> String { TestPaths.fixture("\(folder)/input.safetensors") }

    func testEveryLayoutMatchesTheTimmReference() throws {
        for layout in Self.layouts {
            let result = try runIdleViT(["verify", TestPaths.fixture(layout.file), "--input", Self.input(),
                                         "--reference", TestPaths.fixture("\(Self.folder)/\(layout.reference)"), "--json"] + layout.flags)
            XCTAssertEqual(result.status, 0, "\(layout.file): \(result.stderr)")
            let json = try JSONParser.parse(result.stdout)
            XCTAssertEqual(json["passed"], .bool(true), layout.file)
            let logits = json["activations"]?.arrayValue?.first { $0["name"]?.stringValue == "logits" }
            XCTAssertLessThanOrEqual(logits?["max_abs_error"]?.doubleValue ?? 1, 1e-4, layout.file)
        }
        // The dense activations too, for one layout of each storage kind.
        for file in ["pth/micro-distilled-model-legacy.pth", "pth/micro-distilled-views.pth"] {
            let result = try runIdleViT(["verify", TestPaths.fixture(file), "--input", Self.input(),
                                         "--reference", TestPaths.fixture("\(Self.folder)/reference.safetensors"), "--json"])
            let names = try JSONParser.parse(result.stdout)["activations"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
            XCTAssertTrue(Set(names).isSuperset(of: ["patch_embed", "blocks.0", "blocks.3", "norm", "logits"]), "\(file): \(names)")
        }
    }

    /// The other ViT families' .pth (Fixtures/generate_families.py): DeiT-III with LayerScale
    /// and a ViT without qkv bias, dense and IdleViT, against timm and the IdleViT reference.
    func testOtherFamiliesFromPyTorchCheckpoints() throws {
        for folder in ["deit3-micro", "vit-micro"] {
            for (reference, flags) in [("reference", [String]()), ("idle-0.7", ["--keep-ratio", "0.7"])] {
                let result = try runIdleViT(["verify", TestPaths.fixture("\(folder)/model.pth"), "--heads", "2",
                                             "--input", TestPaths.fixture("\(folder)/input.safetensors"),
                                             "--reference", TestPaths.fixture("\(folder)/\(reference).safetensors"), "--json"] + flags)
                XCTAssertEqual(result.status, 0, "\(folder) \(reference): \(result.stderr)")
                XCTAssertEqual(try JSONParser.parse(result.stdout)["passed"], .bool(true), "\(folder) \(reference)")
            }
        }
    }

    /// `convert --to safetensors` writes the source's tensors bit for bit: F32 layouts equal
    /// model.safetensors, the F16 one equals model-f16.safetensors' bytes when kept in F16.
    func testConvertToSafetensorsIsBitIdenticalToTheSource() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let f32Source = try SafetensorsFile(path: TestPaths.fixture("\(Self.folder)/model.safetensors")).weightSet()
        for layout in Self.layouts where layout.reference == "reference.safetensors" {
            let output = folder.appendingPathComponent(displayName(layout.file) + ".safetensors").path
            let result = try runIdleViT(["convert", TestPaths.fixture(layout.file), "--to", "safetensors", "-o", output] + layout.flags)
            XCTAssertEqual(result.status, 0, "\(layout.file): \(result.stderr)")
            assertSameWeights(try SafetensorsFile(path: output).weightSet(), f32Source, layout.file)
        }
        for (file, dtype, source, flags) in [("pth/micro-distilled-state_dict-f16.pth", "f16", "model-f16.safetensors", [String]()),
                                             ("pth/micro-distilled-ema-bf16.pth", "bf16", "model-bf16.safetensors", ["--key", "model_ema"])] {
            let output = folder.appendingPathComponent("\(dtype).safetensors").path
            let result = try runIdleViT(["convert", TestPaths.fixture(file), "--to", "safetensors", "--dtype", dtype, "-o", output] + flags)
            XCTAssertEqual(result.status, 0, result.stderr)
            let ours = try SafetensorsFile(path: output), theirs = try SafetensorsFile(path: TestPaths.fixture("\(Self.folder)/\(source)"))
            XCTAssertEqual(Set(ours.entries.map(\.name)), Set(theirs.entries.map(\.name)))
            for entry in theirs.entries {
                guard let mine = ours.entry(named: entry.name) else { continue }
                XCTAssertEqual(mine.dtype, entry.dtype, entry.name)
                XCTAssertTrue(ours.bytes(of: mine).elementsEqual(theirs.bytes(of: entry)), "\(file): \(entry.name) differs")
            }
        }
    }

    func testKeyChoosesAmongStateDicts() throws {
        let ema = TestPaths.fixture("pth/micro-distilled-ema-bf16.pth")
        let ambiguous = try runIdleViT(["inspect", ema])
        XCTAssertEqual(ambiguous.status, 2)
        XCTAssertEqual(ambiguous.stderr.split(separator: "\n").count, 1, ambiguous.stderr)
        for fragment in ["'model' (59 tensors)", "'model_ema' (59 tensors)", "--key"] {
            XCTAssertTrue(ambiguous.stderr.contains(fragment), ambiguous.stderr)
        }
        // "model" holds the negated weights: picking it must change the logits.
        let wrong = try runIdleViT(["verify", ema, "--key", "model", "--input", Self.input(),
                                    "--reference", TestPaths.fixture("\(Self.folder)/reference-bf16.safetensors")])
        XCTAssertEqual(wrong.status, 1, wrong.stderr)
        let missing = try runIdleViT(["inspect", ema, "--key", "optimizer"])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains("'optimizer' is not in the checkpoint; state dicts: 'model' (59 tensors), 'model_ema' (59 tensors)"), missing.stderr)
        let notADict = try runIdleViT(["inspect", ema, "--key", "epoch"])
        XCTAssertTrue(notADict.stderr.contains("--key 'epoch' is the integer 299, not a state dict"), notADict.stderr)
        let plain = try runIdleViT(["inspect", TestPaths.fixture("pth/micro-distilled-plain.pth"), "--key", "model"])
        XCTAssertEqual(plain.status, 2)
        XCTAssertTrue(plain.stderr.contains("plain state dict"), plain.stderr)
        let notTorch = try runIdleViT(["inspect", TestPaths.fixture("\(Self.folder)/model.safetensors"), "--key", "model"])
        XCTAssertEqual(notTorch.status, 2)
        XCTAssertTrue(notTorch.stderr.contains("--key 'model' chooses a state dict in a PyTorch checkpoint"), notTorch.stderr)
        // One candidate is taken without --key, wherever it is.
        for (file, chosen) in [("pth/micro-distilled-model-legacy.pth", "'model' (the only one)"),
                               ("pth/micro-distilled-state_dict-f16.pth", "'state_dict' (the only one)"),
                               ("pth/micro-distilled-plain.pth", "the file is a state dict")] {
            let inspect = try runIdleViT(["inspect", TestPaths.fixture(file)])
            XCTAssertEqual(inspect.status, 0, inspect.stderr)
            XCTAssertTrue(inspect.stdout.contains("state dict:   \(chosen)"), "\(file): \(inspect.stdout)")
        }
    }

    func testInspectShowsWhatElseTheCheckpointHolds() throws {
        let training = TestPaths.fixture("pth/micro-distilled-training.pth")
        let text = try runIdleViT(["inspect", training])
        XCTAssertEqual(text.status, 0, text.stderr)
        for line in ["format:       PyTorch (torch.save)",
                     "layout:       torch.save zip archive, folder 'micro-distilled-training'",
                     "  model         state dict of 59 tensors (loaded)",
                     "  optimizer     dict of 2: 'state', 'param_groups'",
                     "  epoch         12",
                     "args (argparse.Namespace, 41 fields):",
                     "  base_keep_rate    = 0.7",
                     "  keep_layers       = (3, 6, 9)",
                     "  data_path         = '/datasets01/imagenet_full_size/061417/'",
                     "inert globals (named by the pickle, not run): argparse.Namespace"] {
            XCTAssertTrue(text.stdout.contains(line), "missing '\(line)' in:\n\(text.stdout)")
        }
        let json = try JSONParser.parse(try runIdleViT(["inspect", training, "--json"]).stdout)
        let checkpoint = try XCTUnwrap(json["checkpoint"])
        XCTAssertEqual(checkpoint["state_dict"], .string("model"))
        XCTAssertEqual(checkpoint["entries"]?.objectPairs?.map(\.key), ["model", "optimizer", "lr_scheduler", "epoch", "scaler", "args"])
        XCTAssertEqual(checkpoint["objects"]?["args"]?["fields"]?["lr"], .string("0.0005"))
        XCTAssertEqual(checkpoint["objects"]?["args"]?["type"], .string("argparse.Namespace"))
        XCTAssertEqual(json["format"], .string("pytorch"))
        // The state dict's tensors as stored.
        let f16 = try JSONParser.parse(try runIdleViT(["inspect", TestPaths.fixture("pth/micro-distilled-state_dict-f16.pth"), "--json"]).stdout)
        let cls = f16["tensors"]?.arrayValue?.first { $0["name"]?.stringValue == "module.cls_token" }
        XCTAssertEqual(cls?["dtype"], .string("F16"))
        XCTAssertEqual(cls?["bytes"], .int(128))
    }

    /// inspect, verify, run, stats, bench, convert (safetensors, bundle, ONNX) and visualize all
    /// take a .pth like any other model file; the bundle records the source format.
    func testEveryCommandAcceptsAPyTorchCheckpoint() throws {
        let model = TestPaths.fixture("pth/micro-distilled-views.pth")
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let bundle = folder.appendingPathComponent("m.idlevit.safetensors").path
        let commands: [[String]] = [
            ["inspect", model, "--graph", "--keep-ratio", "0.7"],
            ["run", model, "--input", Self.input(), "--keep-ratio", "0.5"],
            ["stats", model, "--keep-ratio", "0.7"],
            ["bench", model, "--runs", "1", "--batch", "1"],
            ["convert", model, "-o", bundle, "--keep-ratio", "0.7"],
            ["convert", model, "-o", folder.appendingPathComponent("m.safetensors").path, "--to", "safetensors"],
            ["convert", model, "-o", folder.appendingPathComponent("m.onnx").path, "--to", "onnx"],
            ["visualize", model, "--keep-ratio", "0.7", "-o", folder.appendingPathComponent("v.png").path,
             "--image", TestPaths.fixture("images/chelsea.png")],
        ]
        for command in commands {
            let result = try runIdleViT(command)
            XCTAssertEqual(result.status, 0, "\(command[0]): \(result.stderr)")
        }
        // The bundle runs and verifies against the IdleViT reference like the source does.
        let idle = try runIdleViT(["verify", bundle, "--input", Self.input(), "--reference", TestPaths.fixture("\(Self.folder)/idle-0.7.safetensors")])
        XCTAssertEqual(idle.status, 0, idle.stderr + idle.stdout)
        // The dense ONNX export reads back through the ONNX importer with the reference logits.
        let onnx = try runIdleViT(["verify", folder.appendingPathComponent("m.onnx").path, "--input", Self.input(),
                                   "--reference", TestPaths.fixture("\(Self.folder)/reference.safetensors")])
        XCTAssertEqual(onnx.status, 0, onnx.stderr + onnx.stdout)
        let metadata = try SafetensorsFile(path: bundle).metadata["source"] ?? ""
        XCTAssertTrue(metadata.contains("\"format\":\"pytorch\""), metadata)
    }
}
