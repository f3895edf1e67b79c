import Foundation
import XCTest
import Bundle
import Exporters
import IR

/// Bundles that lie: each one is a valid bundle with one thing changed in its header, and each
/// must make every command exit 2 with one line naming the file, the metadata key and the
/// problem. Also: a failed convert leaves nothing behind.
final class BundleValidationTests: XCTestCase {
    var folder: URL!
    var good: String!

    override func setUpWithError() throws {
        folder = TestPaths.temporaryFolder()
        good = folder.appendingPathComponent("good.idlevit.safetensors").path
        let result = try runIdleViT(["convert", TestPaths.fixture("micro/model.safetensors"), "-o", good, "--keep-ratio", "0.7"])
        XCTAssertEqual(result.status, 0, result.stderr)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: folder) }

    /// A copy of the good bundle with its header rewritten: `edit` changes the metadata (by
    /// key) and the tensor entries; the data section is kept and the header re-padded.
    func tampered(_ name: String, _ edit: (inout [(key: String, value: String)], inout [(key: String, value: JSONValue)]) throws -> Void) throws -> String {
        let parts = try safetensorsParts(try Data(contentsOf: URL(fileURLWithPath: good)))
        let json = parts.header
        var metadata = json["__metadata__"]!.objectPairs!.map { (key: $0.key, value: $0.value.stringValue!) }
        var entries = Array(json.objectPairs!.dropFirst())
        try edit(&metadata, &entries)
        let object = JSONValue.object([("__metadata__", .object(metadata.map { ($0.key, .string($0.value)) }))] + entries)
        var header = Array(JSONWriter.write(object).utf8)
        header += Array(repeating: UInt8(ascii: " "), count: (64 - (8 + header.count) % 64) % 64)
        var bytes: [UInt8] = (0..<8).map { UInt8(truncatingIfNeeded: header.count >> (8 * $0)) }
        bytes += header
        let path = folder.appendingPathComponent(name).path
        try (Data(bytes) + parts.data).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Replaces `old` by `new` in metadata `key`, checking the text was there.
    func replacing(_ key: String, _ old: String, _ new: String) -> (inout [(key: String, value: String)], inout [(key: String, value: JSONValue)]) throws -> Void {
        { metadata, _ in
            let index = try XCTUnwrap(metadata.firstIndex { $0.key == key })
            XCTAssertTrue(metadata[index].value.contains(old), "'\(old)' in metadata '\(key)'")
            metadata[index].value = metadata[index].value.replacingOccurrences(of: old, with: new)
        }
    }

    func assertRejected(_ path: String, mentions phrases: [String], command: [String] = ["inspect"], file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try runIdleViT(command + [path])
        XCTAssertEqual(result.status, 2, "exit status; stderr: \(result.stderr)", file: file, line: line)
        let lines = result.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "one line on stderr: \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.contains((path as NSString).lastPathComponent), "names the file: \(result.stderr)", file: file, line: line)
        for phrase in phrases {
            XCTAssertTrue(result.stderr.contains(phrase), "mentions '\(phrase)': \(result.stderr)", file: file, line: line)
        }
    }

    func testUntamperedCopyIsAccepted() throws {
        let copy = try tampered("copy.idlevit.safetensors") { _, _ in }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: copy)), try Data(contentsOf: URL(fileURLWithPath: good)))
        XCTAssertEqual(try runIdleViT(["inspect", copy]).status, 0)
    }

    func testMissingKeyAndUnknownVersion() throws {
        try assertRejected(try tampered("nokey.idlevit.safetensors") { metadata, _ in metadata.removeAll { $0.key == "producer" } },
                           mentions: ["metadata 'producer' is missing"])
        try assertRejected(try tampered("v2.idlevit.safetensors", replacing("format_version", "1", "2")),
                           mentions: ["metadata 'format_version'", "reads version 1"])
    }

    func testCorruptedJSONValues() throws {
        try assertRejected(try tampered("graph.idlevit.safetensors") { metadata, _ in metadata[metadata.count - 1].value.removeLast() },
                           mentions: ["metadata 'graph' is not valid JSON"])
        try assertRejected(try tampered("arch.idlevit.safetensors", replacing("architecture", "\"depth\":4", "\"depth\":\"4\"")),
                           mentions: ["metadata 'architecture'", "depth"])
        try assertRejected(try tampered("source.idlevit.safetensors", replacing("source", "\"sha256\":\"", "\"sha256\":\"zz")),
                           mentions: ["metadata 'source'", "sha256"])
        try assertRejected(try tampered("idle.idlevit.safetensors", replacing("idle", "{", "[")), mentions: ["metadata 'idle' is not a JSON object"])
    }

    func testWrongScheduleLengthsAndCounts() throws {
        try assertRejected(try tampered("short.idlevit.safetensors", replacing("idle", "\"kept\":[null,11,7,5]", "\"kept\":[null,11,7]")),
                           mentions: ["metadata 'idle'", "3 kept counts for a model of depth 4"], command: ["run", "--input", TestPaths.fixture("micro/input.safetensors")])
        try assertRejected(try tampered("long.idlevit.safetensors", replacing("idle", "\"kept\":[null,11,7,5]", "\"kept\":[null,11,7,5,5]")),
                           mentions: ["metadata 'idle'", "5 kept counts for a model of depth 4"], command: ["stats"])
        try assertRejected(try tampered("range.idlevit.safetensors", replacing("idle", "\"kept\":[null,11,7,5]", "\"kept\":[null,11,7,99]")),
                           mentions: ["metadata 'idle'", "layer 3", "outside 0...16"])
        try assertRejected(try tampered("layers.idlevit.safetensors", replacing("idle", "\"layers\":[1,2,3]", "\"layers\":[1,2]")),
                           mentions: ["metadata 'idle'", "'layers'"])
        // The schedule says 10 where the graph's token_select keeps 11.
        try assertRejected(try tampered("disagree.idlevit.safetensors") { metadata, entries in
            try self.replacing("idle", "\"kept\":[null,11,7,5]", "\"kept\":[null,10,7,5]")(&metadata, &entries)
            try self.replacing("idle", "0.6875", "0.625")(&metadata, &entries)
        }, mentions: ["metadata 'graph'", "blocks.1.selected", "keeps 11", "says 10"], command: ["bench", "--runs", "1"])
    }

    func testTensorsThatDisagreeWithMetadataOrGraph() throws {
        try assertRejected(try tampered("dtype.idlevit.safetensors", replacing("dtype", "f32", "f16")),
                           mentions: ["metadata 'dtype' says f16", "F32"])
        // A tensor renamed: the architecture needs it, the graph names it.
        try assertRejected(try tampered("renamed.idlevit.safetensors") { _, entries in
            let index = try XCTUnwrap(entries.firstIndex { $0.key == "head.bias" })
            entries[index].key = "head.offset"
        }, mentions: ["metadata 'architecture' needs tensor 'head.bias'"])
        // The graph gives a constant another shape than the tensor has (caught as an IR type error).
        try assertRejected(try tampered("shape.idlevit.safetensors",
                                        replacing("graph", "{\"name\":\"head.bias\",\"shape\":[10]", "{\"name\":\"head.bias\",\"shape\":[11]")),
                           mentions: ["metadata 'graph' is not a valid IR graph", "bias f32[11]"])
        // A graph whose constants are all there and well typed but name no tensor of the file.
        try assertRejected(try tampered("constant.idlevit.safetensors", replacing("graph", "\"head.bias\"", "\"head.offset\"")),
                           mentions: ["metadata 'graph' names constant 'head.offset'"])
        // A stored graph that is valid IR but not the graph of these weights.
        try assertRejected(try tampered("eps.idlevit.safetensors", replacing("graph", "\"eps\":1e-06", "\"eps\":1e-05")),
                           mentions: ["metadata 'graph' is not the model its tensors describe", "blocks.0.norm1"])
        // Heads change no shape, but the architecture no longer matches the graph's.
        try assertRejected(try tampered("heads.idlevit.safetensors", replacing("architecture", "\"num_heads\":2", "\"num_heads\":4")),
                           mentions: ["metadata 'graph' describes another architecture"])
    }

    func testFailedConvertLeavesNothingBehind() throws {
        func leftovers() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".tmp-") }
        }
        // The rename onto a folder fails after every byte was written.
        let target = folder.appendingPathComponent("taken.idlevit.safetensors")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: false)
        let result = try runIdleViT(["convert", TestPaths.fixture("micro/model.safetensors"), "-o", target.path, "--keep-ratio", "0.7"])
        XCTAssertEqual(result.status, 2, result.stderr)
        XCTAssertTrue(result.stderr.contains("taken.idlevit.safetensors"), result.stderr)
        XCTAssertEqual(try leftovers(), [])
        // An invalid input bundle: no output, no temporary file.
        let bad = try tampered("bad.idlevit.safetensors", replacing("format_version", "1", "7"))
        let output = folder.appendingPathComponent("out.idlevit.safetensors").path
        XCTAssertEqual(try runIdleViT(["convert", bad, "-o", output]).status, 2)
        XCTAssertFalse(FileManager.default.fileExists(atPath: output))
        XCTAssertEqual(try leftovers(), [])
    }

    /// What the SIGINT/SIGTERM handler relies on: a half-written output is only ever a
    /// temporary file, and `removeAllPending` deletes every one not yet committed, and only those.
    /// (By hand, SIGINT 0.12 s into a DeiT-B convert: exit 130, the folder empty.)
    func testInterruptedWritesLeaveNothingBehind() throws {
        let folder = self.folder.appendingPathComponent("writes")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
        func entries() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() }
        let done = try AtomicFile(destination: folder.appendingPathComponent("done.bin").path)
        try done.write([1, 2, 3])
        try done.commit()
        let first = try AtomicFile(destination: folder.appendingPathComponent("first.bin").path)
        let second = try AtomicFile(destination: folder.appendingPathComponent("second.bin").path)
        try first.write([UInt8](repeating: 7, count: 40 << 20))
        try second.write([9])
        XCTAssertEqual(try entries().count, 3)
        XCTAssertTrue(try entries().filter { $0 != "done.bin" }.allSatisfy { $0.contains(".tmp-") })
        AtomicFile.removeAllPending()
        XCTAssertEqual(try entries(), ["done.bin"])
        XCTAssertEqual(try Data(contentsOf: folder.appendingPathComponent("done.bin")), Data([1, 2, 3]))
        // Dropped without a commit (an error unwinding): the temporary file goes too.
        do {
            let dropped = try AtomicFile(destination: folder.appendingPathComponent("dropped.bin").path)
            try dropped.write([1])
        }
        XCTAssertEqual(try entries(), ["done.bin"])
    }
}
