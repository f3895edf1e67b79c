import Foundation
import XCTest
import Bundle
import IR

/// IdleViT bundles (issue 6): determinism, round trips, provenance, parity of the stored
/// schedule with the Python reference, and refusal of every kind of inconsistent bundle.
final class BundleTests: XCTestCase {
    var folder: URL!

    override func setUp() { folder = TestPaths.temporaryFolder() }
    override func tearDown() { try? FileManager.default.removeItem(at: folder) }

    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    /// Runs `idlevit convert`, failing the test unless it succeeds.
    @discardableResult
    func convert(_ model: String, to name: String, _ options: [String] = [], line: UInt = #line) throws -> String {
        let output = path(name)
        let result = try runIdleViT(["convert", model, "-o", output] + options)
        XCTAssertEqual(result.status, 0, "convert \(model) \(options): \(result.stderr)", line: line)
        return output
    }

    func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    // MARK: SHA-256

    /// The kernels this CPU can run: the portable one always, the SHA-instruction one where present.
    var shaKernels: [SHA256.Kernel] { SHA256.hardwareAvailable ? [.portable, .hardware] : [.portable] }

    func sha256(_ bytes: [UInt8], kernel: SHA256.Kernel, pieces: [Int] = [.max]) -> String {
        var hasher = SHA256(kernel: kernel)
        var offset = 0
        var turn = 0
        while offset < bytes.count {
            let end = offset + min(pieces[turn % pieces.count], bytes.count - offset)
            bytes[offset..<end].withUnsafeBytes { hasher.update($0) }
            offset = end
            turn += 1
        }
        return SHA256.hex(hasher.finalize())
    }

    func testSHA256MatchesFIPSVectors() throws {
        let vectors: [(String, String)] = [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
             "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
            ("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
             "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"),
        ]
        // One million 'a', fed in uneven pieces so partial blocks carry across updates.
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        for kernel in shaKernels {
            for (message, digest) in vectors {
                XCTAssertEqual(sha256(Array(message.utf8), kernel: kernel), digest, "\(kernel) \"\(message.prefix(8))\"")
            }
            XCTAssertEqual(sha256(million, kernel: kernel, pieces: [1, 63, 64, 65, 127, 1000, 4096]),
                           "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", "\(kernel) million a")
            XCTAssertEqual(sha256([UInt8](repeating: 0, count: 64), kernel: kernel),
                           "f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb4b", "\(kernel) 64 zeros")
        }
        // Lengths around the padding boundary (55, 56, 64 bytes) against a one-shot digest of a file.
        for length in [55, 56, 57, 63, 64, 65, 119, 120] {
            let data = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let file = path("bytes-\(length)")
            try Data(data).write(to: URL(fileURLWithPath: file))
            XCTAssertEqual(try SHA256.hex(ofFileAt: file), SHA256.hex(of: data), "length \(length)")
        }
    }

    /// The SHA-instruction kernel is found wherever the CPU has it (so the comparison below
    /// runs), and gives the portable kernel's digest for every length and split.
    func testSHA256KernelsAgree() throws {
        #if os(Linux) && arch(x86_64)
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let flags = cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") }.map { $0.split(separator: " ") } ?? []
        XCTAssertEqual(SHA256.hardwareAvailable, flags.contains("sha_ni"), "CPUID and /proc/cpuinfo disagree on the SHA extensions")
        #endif
        var generator = SystemRandomNumberGenerator()
        let data = (0..<(3 << 20) + 17).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for length in Array(0...200) + [4095, 4096, 1 << 20, data.count] {
            let bytes = Array(data[..<length])
            let digests = shaKernels.map { sha256(bytes, kernel: $0, pieces: [length % 97 + 1, 64, 1000]) }
            XCTAssertEqual(Set(digests).count, 1, "length \(length): \(zip(shaKernels, digests).map { "\($0.0) \($0.1)" })")
        }
    }

    // MARK: writing

    func testLayoutMetadataFirstAndDataAligned() throws {
        let bundle = try convert(TestPaths.fixture("micro/model.safetensors"), to: "m.idlevit.safetensors", ["--keep-ratio", "0.7"])
        let parts = try safetensorsParts(try bytes(bundle))
        XCTAssertEqual(parts.dataStart % 64, 0, "data section starts on a 64-byte boundary")
        let header = String(decoding: parts.headerText, as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{\"__metadata__\":{\"format\":\"idlevit-bundle\",\"format_version\":\"1\""), header.prefix(80) + "")
        let json = parts.header
        let metadata = try XCTUnwrap(json["__metadata__"])
        XCTAssertEqual(metadata.objectPairs?.map(\.key),
                       ["format", "format_version", "producer", "dtype", "source", "architecture", "idle", "preprocessing", "graph"])
        let preprocessing = try JSONParser.parse(try XCTUnwrap(metadata["preprocessing"]?.stringValue))
        XCTAssertEqual(preprocessing["crop_pct"]?.doubleValue, 0.875, "a DeiT's evaluation crop")
        XCTAssertEqual(preprocessing["mean"]?.arrayValue?.compactMap(\.doubleValue), [0.485, 0.456, 0.406])
        let idle = try JSONParser.parse(try XCTUnwrap(metadata["idle"]?.stringValue))
        XCTAssertEqual(idle["kept"], .array([.null, .int(11), .int(7), .int(5)]))
        XCTAssertEqual(idle["base_rate"]?.doubleValue, 0.7)
        let source = try JSONParser.parse(try XCTUnwrap(metadata["source"]?.stringValue))
        XCTAssertEqual(source["file"]?.stringValue, "model.safetensors")
        XCTAssertEqual(source["format"]?.stringValue, "safetensors")
        XCTAssertEqual(source["sha256"]?.stringValue, try SHA256.hex(ofFileAt: TestPaths.fixture("micro/model.safetensors")))
        let graph = try GraphJSON.decode(JSONParser.parse(try XCTUnwrap(metadata["graph"]?.stringValue)))
        XCTAssertEqual(graph.nodes.compactMap { if case .tokenSelect(let s) = $0.op { s.keep } else { nil } }, [11, 7, 5])
        // The first tensors follow the timm state dict.
        XCTAssertEqual(json.objectPairs?.dropFirst().prefix(3).map(\.key), ["cls_token", "pos_embed", "patch_embed.proj.weight"])
    }

    func testConvertIsDeterministicAndBundleRoundTripsByteForByte() throws {
        let model = TestPaths.fixture("micro/model.safetensors")
        for (options, tag) in [(["--keep-ratio", "0.7"], "r07"), (["--dtype", "f16", "--keep-ratio", "0.5"], "f16"),
                               (["--dtype", "bf16"], "bf16"), ([], "dense")] {
            let first = try convert(model, to: "first-\(tag).idlevit.safetensors", options)
            let second = try convert(model, to: "second-\(tag).idlevit.safetensors", options)
            XCTAssertEqual(try bytes(first), try bytes(second), "\(tag): same input, same bytes")
            // bundle -> IR -> bundle, the stored schedule and dtype carried through.
            let dtype = options.contains("f16") ? ["--dtype", "f16"] : options.contains("bf16") ? ["--dtype", "bf16"] : []
            let again = try convert(first, to: "again-\(tag).idlevit.safetensors", dtype)
            XCTAssertEqual(try bytes(first), try bytes(again), "\(tag): bundle -> bundle is byte-identical")
        }
    }

    func testIdleBundleConvertsBackToPlainSafetensors() throws {
        let model = TestPaths.fixture("micro/model.safetensors")
        let idle = try convert(model, to: "idle.idlevit.safetensors", ["--keep-ratio", "0.7"])
        let plain = try convert(idle, to: "plain.safetensors", ["--to", "safetensors"])
        let fromPlain = try convert(plain, to: "from-plain.idlevit.safetensors")
        let fromModel = try convert(model, to: "from-model.idlevit.safetensors")
        let (plainMetadata, plainData) = try split(fromPlain)
        let (modelMetadata, modelData) = try split(fromModel)
        XCTAssertEqual(plainData, modelData, "the dense weights survive bundle -> safetensors -> bundle")
        XCTAssertEqual(plainMetadata[BundleKey.graph], modelMetadata[BundleKey.graph])
        let refused = try runIdleViT(["convert", idle, "-o", path("r.safetensors"), "--to", "safetensors", "--keep-ratio", "0.5"])
        XCTAssertEqual(refused.status, 2, "an idle schedule asked for cannot go into plain safetensors")
    }

    func testBundlesOfOneModelFromEveryFormatDifferOnlyInSource() throws {
        let sources: [(model: String, others: [(String, String)])] = [
            ("micro", [("micro-hf/model.safetensors", "safetensors"), ("micro/external/model.onnx", "onnx"),
                       ("micro/model-opset13.onnx", "onnx")]),
            ("micro-distilled", [("micro-distilled/model-opset17.onnx", "onnx"), ("micro-distilled/model-opset13.onnx", "onnx"),
                                 ("micro-distilled/model-dynamo.onnx", "onnx"), ("micro-distilled/weights-flat.h5", "hdf5"),
                                 ("micro-distilled/weights-nested.h5", "hdf5")]),
        ]
        for (name, others) in sources {
            let reference = try convert(TestPaths.fixture("\(name)/model.safetensors"), to: "\(name)-st.idlevit.safetensors",
                                        ["--keep-ratio", "0.7"])
            let (referenceMetadata, referenceData) = try split(reference)
            for (model, format) in others {
                let input = TestPaths.fixture(model)
                let output = path(model.replacingOccurrences(of: "/", with: "-") + ".idlevit.safetensors")
                let result = try runIdleViT(["convert", input, "-o", output, "--keep-ratio", "0.7"])
                XCTAssertEqual(result.status, 0, "\(model): \(result.stderr)")
                guard result.status == 0 else { continue }
                let (metadata, data) = try split(output)
                XCTAssertEqual(data, referenceData, "\(model): tensors and their header entries")
                for key in BundleKey.all where key != BundleKey.source {
                    XCTAssertEqual(metadata[key], referenceMetadata[key], "\(model): metadata '\(key)'")
                }
                let source = try JSONParser.parse(try XCTUnwrap(metadata[BundleKey.source]))
                XCTAssertEqual(source["format"]?.stringValue, format)
                XCTAssertEqual(source["sha256"]?.stringValue, try SHA256.hex(ofFileAt: input))
            }
        }
    }

    /// Metadata by key, and everything after `__metadata__`: tensor entries and data bytes.
    func split(_ bundle: String) throws -> ([String: String], Data) {
        let parts = try safetensorsParts(try bytes(bundle))
        var metadata: [String: String] = [:]
        for pair in parts.header["__metadata__"]?.objectPairs ?? [] { metadata[pair.key] = pair.value.stringValue }
        let entries = JSONWriter.write(.object(Array(parts.header.objectPairs!.dropFirst())))
        return (metadata, Data(entries.utf8) + parts.data)
    }

    // MARK: running

    func testVerifyOnBundleUsesStoredScheduleAndMatchesIdleReference() throws {
        for model in ["micro", "micro-distilled", "tiny12"] {
            let bundle = try convert(TestPaths.fixture("\(model)/model.safetensors"), to: "\(model).idlevit.safetensors", ["--keep-ratio", "0.7"])
            let verify = try runIdleViT(["verify", bundle, "--input", TestPaths.fixture("\(model)/input.safetensors"),
                                         "--reference", TestPaths.fixture("\(model)/idle-0.7.safetensors")])
            XCTAssertEqual(verify.status, 0, "\(model): \(verify.stdout)\(verify.stderr)")
        }
        // Flags override the stored schedule.
        let bundle = path("micro.idlevit.safetensors")
        let overridden = try runIdleViT(["verify", bundle, "--keep-ratio", "0.5", "--input", TestPaths.fixture("micro/input.safetensors"),
                                         "--reference", TestPaths.fixture("micro/idle-0.5.safetensors")])
        XCTAssertEqual(overridden.status, 0, overridden.stdout + overridden.stderr)
        let dense = try runIdleViT(["verify", bundle, "--keep-ratio", "1", "--input", TestPaths.fixture("micro/input.safetensors"),
                                    "--reference", TestPaths.fixture("micro/reference.safetensors")])
        XCTAssertEqual(dense.status, 0, dense.stdout + dense.stderr)
    }

    func testInspectShowsScheduleAndProvenance() throws {
        let model = TestPaths.fixture("micro/model.safetensors")
        let bundle = try convert(model, to: "m.idlevit.safetensors", ["--keep-ratio", "0.7"])
        let text = try runIdleViT(["inspect", bundle])
        XCTAssertEqual(text.status, 0, text.stderr)
        let sha = try SHA256.hex(ofFileAt: model)
        for phrase in ["IdleViT bundle", "model.safetensors (safetensors), sha256 \(sha)", "r = 0.7", "1:11 2:7 3:5", "idlevit 0.1.0"] {
            XCTAssertTrue(text.stdout.contains(phrase), "inspect mentions '\(phrase)':\n\(text.stdout)")
        }
        let json = try runIdleViT(["inspect", bundle, "--json"])
        let document = try JSONParser.parse(json.stdout)
        XCTAssertEqual(document["format"]?.stringValue, "idlevit-bundle")
        XCTAssertEqual(document["schedule"], .array([.null, .int(11), .int(7), .int(5)]))
        XCTAssertTrue(document["details"]?["source"]?.stringValue?.contains(sha) == true)
    }

    func testReaderAPIOpensAndValidatesABundle() throws {
        let bundle = try convert(TestPaths.fixture("micro-distilled/model.safetensors"), to: "d.idlevit.safetensors",
                                 ["--keep-ratio", "0.9", "--dtype", "bf16"])
        let opened = try BundleReader.open(path: bundle)
        XCTAssertEqual(opened.info.dtype, .bf16)
        XCTAssertEqual(opened.info.schedule?.kept, [nil, 14, 12, 11])
        XCTAssertEqual(opened.info.schedule?.keepRatio, 0.9)
        XCTAssertTrue(opened.info.architecture.distilled)
        XCTAssertEqual(opened.info.source.file, "model.safetensors")
        XCTAssertEqual(opened.graph.nodes.filter { $0.kind == .tokenSelect }.count, 3)
        XCTAssertEqual(BundleGraph.text(opened.graph), opened.info.graphText)
    }
}

/// A safetensors file taken apart by hand (the tests look at its exact bytes): the header's
/// text (padding included) and JSON, where the data section starts, and the data section.
func safetensorsParts(_ file: Data) throws -> (headerText: Data, header: JSONValue, dataStart: Int, data: Data) {
    let length = file.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    let text = file[8..<8 + length]
    return (text, try JSONParser.parse(Array(text)), 8 + length, file[(8 + length)...])
}
