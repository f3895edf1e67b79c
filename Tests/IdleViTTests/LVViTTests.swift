import Foundation
import XCTest
import IR
import Importers
@testable import IdleViTKit
@testable import ModelDescription
import Passes

/// LV-ViT (Fixtures/generate_lvvit.py: a PyTorch module written from the published
/// architecture, with perturbed BatchNorm statistics). Dense references come from that module's
/// forward hooks, IdleViT references from Fixtures/lvvit_reference.py (checked there against a
/// port of IdleLVViT's own test path), never from idlevit.
final class LVViTTests: XCTestCase {
    let folder = "lvvit-micro"
    func fixture(_ name: String) -> String { TestPaths.fixture("\(folder)/\(name)") }

    /// Every format the fixture is stored in: dense within 1e-4 of PyTorch, and IdleViT at
    /// r = 0.5 / 0.7 within 1e-4 of the reference with every selection identical (and the token
    /// cut loss of every idle layer).
    func testEveryFormatMatchesPyTorchAndTheIdleReference() throws {
        let input = fixture("input.safetensors")
        for file in ["model.safetensors", "model.pth", "model-checkpoint.pth", "model-opset17.onnx"] {
            // dim 32 is not 64 x heads: checkpoints need --heads, the ONNX graph states it.
            let heads = file.hasSuffix(".onnx") ? [] : ["--heads", "2"]
            let dense = try verify(fixture(file), reference: fixture("reference.safetensors"), input: input, extra: heads)
            let names = Set((dense["activations"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue })
            XCTAssertTrue(names.isSuperset(of: ["patch_embed.bn1", "patch_embed.relu3", "patch_embed", "blocks.7", "head", "aux_max", "logits"]),
                          "\(file): the stem, blocks and both heads compared: \(names.sorted())")
            if !file.hasSuffix(".onnx") {
                // Checkpoints keep BatchNorm apart from the convolutions: those values line up too.
                try verifyConvolutions(fixture(file), extra: heads)
            }
            for ratio in ["0.5", "0.7"] {
                let json = try verify(fixture(file), reference: fixture("idle-\(ratio).safetensors"), input: input,
                                      extra: heads + ["--keep-ratio", ratio, "--cut-loss"])
                let compared = (json["activations"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
                XCTAssertEqual(compared.filter { $0.hasSuffix(".cut_loss.total") }.count, 6, "\(file) r=\(ratio): token cut loss per idle layer")
                let selections = json["selection"]?.arrayValue ?? []
                XCTAssertEqual(selections.compactMap { $0["name"]?.stringValue }, (2...7).map { "blocks.\($0).selected" }, "\(file) r=\(ratio)")
                for selection in selections {
                    XCTAssertEqual(selection["agreement"]?.doubleValue, 1, "\(file) r=\(ratio) \(selection["name"]!)")
                }
            }
        }
    }

    /// The stem's convolutions before BatchNorm (reference-conv.safetensors has no logits).
    func verifyConvolutions(_ model: String, extra: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try runIdleViT(["verify", model, "--input", fixture("input.safetensors"), "--reference",
                                     fixture("reference-conv.safetensors"), "--json"] + extra)
        XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
        let activations = try JSONParser.parse(result.stdout)["activations"]?.arrayValue ?? []
        XCTAssertEqual(activations.compactMap { $0["name"]?.stringValue }, ["patch_embed.conv1", "patch_embed.conv2", "patch_embed.conv3"],
                       file: file, line: line)
        XCTAssertTrue(activations.allSatisfy { $0["passed"] == .bool(true) }, "\(model)", file: file, line: line)
    }

    /// The architecture from shapes: the stem's width and BatchNorm from the checkpoint, folded
    /// BatchNorm (conv biases) and skip_lam from the ONNX export's Divs.
    func testRecognitionFromCheckpointAndONNX() throws {
        let checkpoint = try ModelLoader.load(fixture("model.safetensors"), options: LoadOptions(recognition: RecognitionOptions(heads: 2)))
        let a = checkpoint.architecture
        XCTAssertEqual(a.family, .lvvit)
        XCTAssertEqual([a.imageSize, a.patchSize, a.embedDim, a.depth, a.heads, a.mlpHidden, a.classes, a.stemChannels],
                       [32, 8, 32, 8, 2, 96, 10, 8])
        XCTAssertEqual(a.layerNormEps, 1e-5, "torch's nn.LayerNorm default, which LV-ViT uses")
        XCTAssertTrue(a.stemBatchNorm && a.auxHead && !a.qkvBias)
        XCTAssertEqual(a.skipLam, 2)
        XCTAssertEqual(checkpoint.recognized.weights.names.prefix(9), [
            "cls_token", "pos_embed", "patch_embed.conv1.weight", "patch_embed.bn1.weight", "patch_embed.bn1.bias",
            "patch_embed.bn1.running_mean", "patch_embed.bn1.running_var", "patch_embed.conv2.weight", "patch_embed.bn2.weight",
        ], "the official state-dict order, without num_batches_tracked")
        XCTAssertEqual(checkpoint.recognized.weights.names.suffix(2), ["aux_head.weight", "aux_head.bias"])
        XCTAssertEqual(ModelDescription.parameterCount(a), 92_028, "the module's sum(p.numel() for p in parameters())")

        let onnx = try ModelLoader.load(fixture("model-opset17.onnx"))
        XCTAssertFalse(onnx.architecture.stemBatchNorm, "torch.onnx.export folds BatchNorm into the convolutions")
        var unfolded = onnx.architecture
        unfolded.stemBatchNorm = true
        XCTAssertEqual(unfolded, a, "otherwise the same model")
        XCTAssertTrue(onnx.recognized.weights.names.contains("patch_embed.conv1.bias"))
        XCTAssertTrue(onnx.recognized.notes.contains("skip_lam: 2 from ONNX graph"), "\(onnx.recognized.notes)")
    }

    /// skip_lam is not in the weights: `--skip-lam` sets it (and does change the numbers), and
    /// is refused for a ViT-family checkpoint and outside its bounds.
    func testSkipLamOption() throws {
        let wrong = try runIdleViT(["verify", fixture("model.safetensors"), "--heads", "2", "--skip-lam", "3", "--input",
                                    fixture("input.safetensors"), "--reference", fixture("reference.safetensors")])
        XCTAssertEqual(wrong.status, 1, "blocks divided by 3 instead of 2 differ from PyTorch: \(wrong.stderr)")
        let inspect = try runIdleViT(["inspect", fixture("model.safetensors"), "--heads", "2", "--skip-lam", "2", "--json"])
        XCTAssertEqual(try JSONParser.parse(inspect.stdout)["architecture"]?["skip_lam"]?.doubleValue, 2)
        let vit = try runIdleViT(["inspect", TestPaths.fixture("micro/model.safetensors"), "--skip-lam", "2"])
        XCTAssertEqual(vit.status, 2)
        XCTAssertTrue(vit.stderr.contains("applies to LV-ViT"), vit.stderr)
        let bad = try runIdleViT(["inspect", fixture("model.safetensors"), "--skip-lam", "nan"])
        XCTAssertEqual(bad.status, 2, bad.stderr)
    }

    /// A plain `num_heads` entry in a file's metadata (as some exporters write into safetensors'
    /// `__metadata__`) gives the heads of an LV-ViT as it does of a ViT; without it, dim 32
    /// leaves them unknown.
    func testHeadsFromAPlainMetadataEntry() throws {
        for path in [fixture("model.safetensors"), TestPaths.fixture("vit-micro/model.safetensors")] {
            var source = try SafetensorsFile(path: path).weightSet()
            source.metadata["num_heads"] = nil
            XCTAssertThrowsError(try ModelDescription.recognize(source)) {
                XCTAssertTrue("\($0)".contains("pass --heads"), "\($0)")
            }
            source.metadata["num_heads"] = "2"
            let recognized = try ModelDescription.recognize(source)
            XCTAssertEqual(recognized.architecture.heads, 2, path)
            XCTAssertTrue(recognized.notes.contains("heads: 2 from file metadata"), "\(recognized.notes)")
        }
    }

    /// What the official code's tensors must be: missing BatchNorm statistics, a BatchNorm
    /// counter in a ViT, or a counter without its BatchNorm are clear one-line errors.
    func testMissingAndStrayTensorsAreReported() throws {
        let source = try SafetensorsFile(path: fixture("model.safetensors")).weightSet()
        XCTAssertEqual(source.counters, ["patch_embed.bn1.num_batches_tracked", "patch_embed.bn2.num_batches_tracked",
                                         "patch_embed.bn3.num_batches_tracked"])
        var missing = WeightSet(file: source.file, format: .safetensors, weights: source.weights.filter { $0.name != "patch_embed.bn2.running_var" })
        missing.counters = source.counters
        XCTAssertThrowsError(try ModelDescription.recognize(missing, options: RecognitionOptions(heads: 2))) {
            XCTAssertTrue("\($0)".contains("missing tensor 'patch_embed.bn2.running_var' [8]"), "\($0)")
        }
        var stray = WeightSet(file: "vit.safetensors", format: .safetensors,
                              weights: try SafetensorsFile(path: TestPaths.fixture("vit-micro/model.safetensors")).weightSet().weights.map { $0 })
        stray.counters = ["norm.num_batches_tracked"]
        XCTAssertThrowsError(try ModelDescription.recognize(stray, options: RecognitionOptions(heads: 2))) {
            XCTAssertTrue("\($0)".contains("unexpected tensor 'norm.num_batches_tracked'"), "\($0)")
        }
    }

    /// A bundle holds the checkpoint's own tensors in the official order (BatchNorm's running
    /// statistics included, its counters not: torch fills them in when a state dict lacks
    /// them), runs its stored graph, and takes another schedule.
    func testBundleRoundTrip() throws {
        let temporary = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: temporary) }
        let input = fixture("input.safetensors")
        let bundle = temporary.appendingPathComponent("lvvit.idlevit.safetensors").path
        let convert = try runIdleViT(["convert", fixture("model.pth"), "--heads", "2", "--keep-ratio", "0.7", "-o", bundle])
        XCTAssertEqual(convert.status, 0, convert.stderr)
        let file = try SafetensorsFile(path: bundle)
        // torch.save keeps the module's state-dict order.
        let stateDict = try ModelLoader.load(fixture("model.pth"), options: LoadOptions(recognition: RecognitionOptions(heads: 2)))
        XCTAssertEqual(file.entries.map(\.name), stateDict.sourceTensors.map(\.name).filter { !$0.hasSuffix(".num_batches_tracked") })
        XCTAssertEqual(file.entries.count, 113)
        let architecture = try JSONParser.parse(file.metadata["architecture"] ?? "")
        XCTAssertEqual(architecture["family"], .string("lvvit"))
        XCTAssertEqual(architecture["skip_lam"]?.doubleValue, 2)
        XCTAssertEqual(architecture["stem_channels"]?.intValue, 8)
        try verify(bundle, reference: fixture("idle-0.7.safetensors"), input: input)
        try verify(bundle, reference: fixture("idle-0.5.safetensors"), input: input, extra: ["--keep-ratio", "0.5"])
        try verify(bundle, reference: fixture("reference.safetensors"), input: input, extra: ["--keep-ratio", "1"])

        // From the ONNX export: the folded stem, stored and recognised back as such.
        let folded = temporary.appendingPathComponent("folded.idlevit.safetensors").path
        XCTAssertEqual(try runIdleViT(["convert", fixture("model-opset17.onnx"), "--keep-ratio", "0.5", "-o", folded]).status, 0)
        try verify(folded, reference: fixture("idle-0.5.safetensors"), input: input)
    }

    /// `convert --to onnx` writes the stem (BatchNormalization kept), the divisions and the
    /// token-labelling head in standard ops, and the ONNX importer reads that back.
    func testONNXExportReadsBack() throws {
        let temporary = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: temporary) }
        let input = fixture("input.safetensors")
        let exported = temporary.appendingPathComponent("lvvit.onnx").path
        let convert = try runIdleViT(["convert", fixture("model.safetensors"), "--heads", "2", "--to", "onnx", "-o", exported])
        XCTAssertEqual(convert.status, 0, convert.stderr)
        let loaded = try ModelLoader.load(exported)
        XCTAssertTrue(loaded.architecture.stemBatchNorm, "BatchNormalization nodes give the checkpoint's tensors back")
        try verify(exported, reference: fixture("reference.safetensors"), input: input)
        try verifyConvolutions(exported)
        try verify(exported, reference: fixture("idle-0.7.safetensors"), input: input, extra: ["--keep-ratio", "0.7"])
    }

    /// The official LV-ViT-S schedule (IdleViT's infer.py and main.py agree: layers 4-15, keep
    /// ratios r x4, r^2 x4, r^3 x4, K = int(196 * ratio)) is the default four-stage schedule.
    func testDefaultScheduleIsTheOfficialLVViTSOne() throws {
        let schedule = try IdleSchedule.standard(depth: 16, patchCount: 196, keepRatio: 0.7)
        XCTAssertEqual(schedule.kept, [nil, nil, nil, nil] + [137, 137, 137, 137, 96, 96, 96, 96, 67, 67, 67, 67])
        let medium = try IdleSchedule.standard(depth: 20, patchCount: 196, keepRatio: 0.7)
        XCTAssertEqual(medium.idleLayers, Array(5...19), "LV-ViT-M: infer.py's range(5, 20)")
    }

    static let lvvitS = ModelArchitecture(
        family: .lvvit, imageSize: 224, patchSize: 16, embedDim: 384, depth: 16, heads: 6, mlpHidden: 1152, classes: 1000,
        distilled: false, layerNormEps: 1e-5, qkvBias: false, stemChannels: 64, stemBatchNorm: true, skipLam: 2, auxHead: true)

    /// LV-ViT-S's published figures: 26M parameters and 6.6 GMACs at 224 px; expected values
    /// are the layer formulas written out here.
    func testLVViTSmallParametersAndGMACs() throws {
        let a = Self.lvvitS
        XCTAssertNoThrow(try a.validate())
        XCTAssertEqual(ModelDescription.publishedName(a), "lvvit_s")
        // Stem: conv1 64x3x7x7, conv2/conv3 64x64x3x3, 3 BatchNorm affines; proj 384x64x8x8 + bias.
        let stem = 64 * 3 * 49 + 2 * 64 * 64 * 9 + 3 * 2 * 64 + 384 * 64 * 64 + 384
        // Per block: 2 norms, qkv without bias, proj, fc1, fc2 (MLP 1152).
        let block = 4 * 384 + 3 * 384 * 384 + 384 * 384 + 384 + 1152 * 384 + 1152 + 384 * 1152 + 384
        let parameters = stem + 384 + 197 * 384 + 16 * block + 2 * 384 + 2 * (1000 * 384 + 1000)
        XCTAssertEqual(parameters, 26_151_824)
        XCTAssertEqual(ModelDescription.parameterCount(a), parameters)
        XCTAssertEqual(Double(parameters) / 1e6, 26, accuracy: 0.5, "LV-ViT paper: 26M")

        let n: Double = 197, c: Double = 384, h: Double = 1152
        // conv1 at 112 x 112 over 3 x 7 x 7, conv2 and conv3 over 64 x 3 x 3; proj per patch.
        let convs = Double(112 * 112 * 64 * (3 * 49 + 2 * 64 * 9))
        let proj = Double(196 * 384 * 64 * 64)
        let heads = Double(384 * 1000 + 196 * 384 * 1000)
        let attentionAndMLP: Double = 4 * n * c * c + 2 * n * c * h
        let denseBlock: Double = attentionAndMLP + 2 * n * n * c + 2 * n * c
        let dense = CostModel.summary(a, schedule: nil)
        XCTAssertEqual(dense.macs, convs + proj + 16 * denseBlock + heads, accuracy: 1)
        XCTAssertEqual(dense.macs / 1e9, 6.6, accuracy: 0.05, "LV-ViT paper: 6.6 GMACs")

        let schedule = try IdleSchedule.standard(depth: 16, patchCount: 196, keepRatio: 0.7)
        func idleBlock(_ k: Int) -> Double {
            let s = Double(k + 1)
            let scoring: Double = c * c + n * c * c + n * c
            let selected: Double = 3 * s * c * c + 2 * s * c * h + 2 * s * s * c + 2 * s * c
            return scoring + selected
        }
        let idle = CostModel.summary(a, schedule: schedule)
        let idleBlocks: Double = 4 * (idleBlock(137) + idleBlock(96) + idleBlock(67))
        let expected: Double = convs + proj + 4 * denseBlock + idleBlocks + heads
        XCTAssertEqual(idle.macs, expected, accuracy: 1)
        XCTAssertEqual((idle.macs / 1e6).rounded() / 1e3, 4.771)
        XCTAssertEqual(idle.layers.map(\.name).prefix(4), ["patch_embed.conv1", "patch_embed.conv2", "patch_embed.conv3", "patch_embed"])
    }

    /// The new ops' attributes are validated once, and architectures read old keys as before.
    func testOpsAndArchitectureJSON() throws {
        XCTAssertThrowsError(try Conv2d(stride: 0, padding: 1))
        XCTAssertThrowsError(try Conv2d(stride: 2, padding: -1))
        XCTAssertThrowsError(try Divide(divisor: 0))
        XCTAssertThrowsError(try Divide(divisor: .infinity))
        XCTAssertThrowsError(try MaxTokens(start: -1))
        XCTAssertThrowsError(try Op.decode(kind: .divide, attributes: [])) { XCTAssertTrue("\($0)".contains("divisor"), "\($0)") }
        XCTAssertThrowsError(try Op.decode(kind: .conv2d, attributes: [("stride", .int(1)), ("padding", .int(0)), ("groups", .int(2))]))
        // conv2d's output extent as torch computes it: floor((H + 2p - K) / s) + 1.
        XCTAssertEqual(try Conv2d(stride: 2, padding: 3).outputExtent(input: 224, kernel: 7), 112)
        XCTAssertEqual(try Conv2d(stride: 2, padding: 3).outputExtent(input: 33, kernel: 7), 17)
        XCTAssertNil(try Conv2d(stride: 1, padding: 0).outputExtent(input: 2, kernel: 3))

        let encoded = GraphJSON.encode(Self.lvvitS)
        XCTAssertEqual(try GraphJSON.decodeArchitecture(encoded), Self.lvvitS)
        let deit = ModelArchitecture(imageSize: 224, patchSize: 16, embedDim: 384, depth: 12, heads: 6, mlpHidden: 1536, classes: 1000,
                                     distilled: false)
        let deitKeys = GraphJSON.encode(deit).objectPairs?.map(\.key) ?? []
        XCTAssertFalse(deitKeys.contains("skip_lam"), "a ViT's architecture is written as before LV-ViT")
        XCTAssertEqual(try GraphJSON.decodeArchitecture(GraphJSON.encode(deit)), deit)
        var bad = Self.lvvitS
        bad.skipLam = 0
        XCTAssertThrowsError(try bad.validate())
        var vitWithStem = deit
        vitWithStem.stemChannels = 64
        XCTAssertThrowsError(try vitWithStem.validate())
    }
}
