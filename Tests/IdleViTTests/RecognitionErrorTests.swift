import Foundation
import XCTest
import IR
@testable import Importers
@testable import Exporters

/// Missing, unexpected and mis-shaped tensors are all reported together, by name.
final class RecognitionErrorTests: XCTestCase {
    func rewrite(_ source: String, to path: String, edit: ([SafetensorsWriter.Item]) -> [SafetensorsWriter.Item]) throws {
        let reader = try SafetensorsFile(path: source)
        let items = try reader.entries.map { SafetensorsWriter.Item(name: $0.name, tensor: try reader.floatTensor($0), dtype: .f32) }
        try SafetensorsWriter.write(edit(items), metadata: [], to: path)
    }

    /// `idlevit inspect` on the micro fixture rewritten by `edit` as `name`: exit 2 and one line
    /// (asserted), which is returned.
    func inspectRewrittenMicro(named name: String, edit: ([SafetensorsWriter.Item]) -> [SafetensorsWriter.Item],
                               file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent(name).path
        try rewrite(TestPaths.fixture("micro/model.safetensors"), to: path, edit: edit)
        let result = try runIdleViT(["inspect", path])
        XCTAssertEqual(result.status, 2, result.stderr, file: file, line: line)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr, file: file, line: line)
        return result.stderr
    }

    func testAllProblemsInOneMessage() throws {
        let stderr = try inspectRewrittenMicro(named: "broken.safetensors") { items in
            var items = items.filter { $0.name != "blocks.1.mlp.fc2.bias" }
            let index = items.firstIndex { $0.name == "blocks.2.attn.proj.weight" }!
            items[index].tensor = items[index].tensor.reshaped([64, 256])
            items.append(SafetensorsWriter.Item(name: "blocks.0.extra", tensor: FloatTensor(shape: [1], values: [0]), dtype: .f32))
            return items
        }
        XCTAssertTrue(stderr.contains("broken.safetensors"), stderr)
        XCTAssertTrue(stderr.contains("missing tensor 'blocks.1.mlp.fc2.bias' [128]"), stderr)
        XCTAssertTrue(stderr.contains("tensor 'blocks.2.attn.proj.weight' has shape [64, 256], expected [128, 128]"), stderr)
        XCTAssertTrue(stderr.contains("unexpected tensor 'blocks.0.extra'"), stderr)
    }

    /// A file name is escaped once (a backslash in it reads `\u{5c}`, not `\u{5c}u{5c}`), and
    /// with more problems than the list shows, the reason recognition stopped is still there.
    func testLongProblemListKeepsTheReasonAndTheNameIsEscapedOnce() throws {
        let stderr = try inspectRewrittenMicro(named: "back\\slash.safetensors") { items in
            items.filter { $0.name != "patch_embed.proj.weight" }
                + (0..<30).map { SafetensorsWriter.Item(name: "stray.\($0)", tensor: FloatTensor(shape: [1], values: [0]), dtype: .f32) }
        }
        XCTAssertTrue(stderr.contains("back\\u{5c}slash.safetensors: "), stderr)
        XCTAssertFalse(stderr.contains("u{5c}u{5c}"), stderr)
        XCTAssertTrue(stderr.contains("; and more; needs 'patch_embed.proj.weight'"), stderr)
    }

    func testPrefixesAreStrippedAndHeadsOverride() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("prefixed.safetensors").path
        try rewrite(TestPaths.fixture("micro/model.safetensors"), to: path) { items in
            items.map { var item = $0; item.name = "module." + item.name; return item }
        }
        let result = try runIdleViT(["verify", path, "--input", TestPaths.fixture("micro/input.safetensors"),
                                     "--reference", TestPaths.fixture("micro/reference.safetensors")])
        XCTAssertEqual(result.status, 0, result.stderr)
        // Wrong heads change attention: verification must notice.
        let wrongHeads = try runIdleViT(["verify", path, "--heads", "4", "--input", TestPaths.fixture("micro/input.safetensors"),
                                         "--reference", TestPaths.fixture("micro/reference.safetensors")])
        XCTAssertEqual(wrongHeads.status, 1, wrongHeads.stderr)
        let invalidHeads = try runIdleViT(["inspect", path, "--heads", "3"])
        XCTAssertEqual(invalidHeads.status, 2)
        XCTAssertTrue(invalidHeads.stderr.contains("3 heads do not divide dim 128"), invalidHeads.stderr)
    }

    func testConvertWritesCanonicalCheckpointAtomically() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("out.safetensors").path
        for dtype in ["f32", "f16", "bf16"] {
            let result = try runIdleViT(["convert", TestPaths.fixture("micro-hf/model.safetensors"), "-o", out, "--to", "safetensors", "--dtype", dtype])
            XCTAssertEqual(result.status, 0, result.stderr)
            let written = try SafetensorsFile(path: out)
            XCTAssertEqual(written.header.dataStart % 64, 0, "data section 64-byte aligned")
            let original = try SafetensorsFile(path: TestPaths.fixture("micro/model.safetensors"))
            XCTAssertEqual(Set(written.entries.map(\.name)), Set(original.entries.map(\.name)), "timm names from HF names")
            if dtype == "f32" {
                for entry in original.entries {
                    XCTAssertEqual(try written.floatTensor(written.entry(named: entry.name)!).values, try original.floatTensor(entry).values, entry.name)
                }
            }
        }
        // A failing convert leaves nothing behind.
        let bad = try runIdleViT(["convert", TestPaths.fixture("micro/model.safetensors"), "-o", folder.appendingPathComponent("x.safetensors").path,
                                  "--to", "safetensors", "--dtype", "f8"])
        XCTAssertEqual(bad.status, 2)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0 != "out.safetensors" }
        XCTAssertEqual(leftovers, [], "no partial or temporary files")
    }
}
