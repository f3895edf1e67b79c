import Foundation
import XCTest
import IR
@testable import Importers

/// One test per safetensors validation rule of DESIGN §2: each hostile file makes `idlevit
/// inspect` exit 2 with a one-line message naming the file and the broken rule.
final class SafetensorsValidationTests: XCTestCase {
    var folder: URL!

    override func setUp() { folder = TestPaths.temporaryFolder() }
    override func tearDown() { try? FileManager.default.removeItem(at: folder) }

    /// A file from a header string and a data section.
    func file(_ name: String, header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> String {
        let json = Array(header.utf8)
        var bytes: [UInt8] = []
        var length = declaredLength ?? UInt64(json.count)
        for _ in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: length)); length >>= 8 }
        return raw(name, bytes + json + data)
    }

    func raw(_ name: String, _ bytes: [UInt8]) -> String {
        let url = folder.appendingPathComponent(name)
        try! Data(bytes).write(to: url)
        return url.path
    }

    func assertRejected(_ path: String, mentions phrases: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try runIdleViT(["inspect", path])
        XCTAssertEqual(result.status, 2, "exit status; stderr: \(result.stderr)", file: file, line: line)
        XCTAssertEqual(result.stdout, "", "nothing on stdout", file: file, line: line)
        let lines = result.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "one line on stderr: \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.contains((path as NSString).lastPathComponent), "names the file: \(result.stderr)", file: file, line: line)
        for phrase in phrases {
            XCTAssertTrue(result.stderr.contains(phrase), "mentions '\(phrase)': \(result.stderr)", file: file, line: line)
        }
    }

    let f32x2 = "\"dtype\":\"F32\",\"shape\":[2]"

    func testEmptyFile() throws {
        try assertRejected(raw("empty.safetensors", []), mentions: ["empty"])
    }

    func testShorterThanEightBytes() throws {
        try assertRejected(raw("short.safetensors", [3, 0, 0, 0, 0]), mentions: ["fewer than the 8-byte header length"])
    }

    func testHeaderLengthPastTheEnd() throws {
        try assertRejected(file("past.safetensors", header: "{}", declaredLength: 5000), mentions: ["runs past the end of the file"])
    }

    func testDeclaredHeaderOver100MB() throws {
        try assertRejected(file("huge.safetensors", header: "{}", declaredLength: 200_000_000), mentions: ["exceeds the 100 MB limit"])
    }

    /// The tensor limit counts tensors: one tensor over it is refused with or without
    /// `__metadata__` (without it, the parser's cap of limit + 1 entries let it through).
    func testOneTensorOverTheLimit() throws {
        let limit = Limits.tensorCount.maximum
        func entries(_ count: Int) -> String {
            (0..<count).map { "\"t\($0)\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}" }.joined(separator: ",")
        }
        try assertRejected(file("over.safetensors", header: "{" + entries(limit + 1) + "}"),
                           mentions: ["\(limit + 1) tensors, over the limit of \(limit)"])
        try assertRejected(file("over-meta.safetensors", header: "{\"__metadata__\":{}," + entries(limit + 1) + "}"),
                           mentions: ["more than \(limit + 1) members"])
    }

    func testNotJSON() throws {
        try assertRejected(file("notjson.safetensors", header: "{\"a\": nope}"), mentions: ["not valid JSON"])
    }

    func testNotAnObject() throws {
        try assertRejected(file("array.safetensors", header: "[1, 2, 3]"), mentions: ["not an object"])
    }

    func testUnknownDType() throws {
        let path = file("dtype.safetensors", header: "{\"w\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", data: [UInt8](repeating: 0, count: 8))
        try assertRejected(path, mentions: ["'w'", "unknown dtype 'F33'"])
    }

    func testOffsetsOutOfRange() throws {
        let path = file("range.safetensors", header: "{\"w\":{\(f32x2),\"data_offsets\":[0,8]}}", data: [UInt8](repeating: 0, count: 4))
        try assertRejected(path, mentions: ["'w'", "run past the data section"])
    }

    func testReversedOffsets() throws {
        let path = file("reversed.safetensors", header: "{\"w\":{\(f32x2),\"data_offsets\":[8,0]}}", data: [UInt8](repeating: 0, count: 8))
        try assertRejected(path, mentions: ["'w'", "reversed"])
    }

    func testOverlappingTensors() throws {
        let header = "{\"a\":{\(f32x2),\"data_offsets\":[0,8]},\"b\":{\(f32x2),\"data_offsets\":[4,12]}}"
        try assertRejected(file("overlap.safetensors", header: header, data: [UInt8](repeating: 0, count: 12)), mentions: ["'b'", "overlap", "'a'"])
    }

    func testHoleBetweenTensors() throws {
        let header = "{\"a\":{\(f32x2),\"data_offsets\":[0,8]},\"b\":{\(f32x2),\"data_offsets\":[12,20]}}"
        try assertRejected(file("hole.safetensors", header: header, data: [UInt8](repeating: 0, count: 20)), mentions: ["'b'", "hole", "[8, 12)"])
    }

    func testTrailingBytesAreAHole() throws {
        let header = "{\"a\":{\(f32x2),\"data_offsets\":[0,8]}}"
        try assertRejected(file("tail.safetensors", header: header, data: [UInt8](repeating: 0, count: 16)), mentions: ["hole", "[8, 16)"])
    }

    func testShapeTimesDTypeMismatch() throws {
        let header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}"
        try assertRejected(file("count.safetensors", header: header, data: [UInt8](repeating: 0, count: 8)), mentions: ["'w'", "needs 12 bytes", "hold 8"])
    }

    func testNegativeShape() throws {
        let header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}"
        try assertRejected(file("negative.safetensors", header: header, data: [UInt8](repeating: 0, count: 8)), mentions: ["'w'", "negative"])
    }

    func testOverflowingShape() throws {
        let header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}"
        try assertRejected(file("overflow.safetensors", header: header, data: [UInt8](repeating: 0, count: 8)), mentions: ["'w'", "overflows"])
    }

    func testShapeEntryBeyondInt64() throws {
        let header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999999],\"data_offsets\":[0,8]}}"
        try assertRejected(file("bigdim.safetensors", header: header, data: [UInt8](repeating: 0, count: 8)), mentions: ["'w'", "overflows"])
    }

    func testDuplicateKey() throws {
        let header = "{\"w\":{\(f32x2),\"data_offsets\":[0,8]},\"w\":{\(f32x2),\"data_offsets\":[0,8]}}"
        try assertRejected(file("duplicate.safetensors", header: header, data: [UInt8](repeating: 0, count: 8)), mentions: ["duplicate key \"w\""])
    }

    func testGitLFSPointer() throws {
        let pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n"
        try assertRejected(raw("lfs.safetensors", Array(pointer.utf8)), mentions: ["Git LFS pointer"])
    }

    func testMetadataMustMapStringsToStrings() throws {
        let header = "{\"__metadata__\":{\"n\":3},\"w\":{\(f32x2),\"data_offsets\":[0,8]}}"
        try assertRejected(file("meta.safetensors", header: header, data: [UInt8](repeating: 0, count: 8)), mentions: ["__metadata__", "not a string"])
    }

    func testIntegerTensorIsNotAWeight() throws {
        let header = "{\"w\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}"
        try assertRejected(file("int.safetensors", header: header, data: [UInt8](repeating: 0, count: 8)), mentions: ["'w'", "I64 cannot be read as weights"])
    }

    /// A well-formed file parses, tensors point into the map, and F16/BF16 widen exactly.
    func testValidFileReadsAndConverts() throws {
        // 1.5 in f16 is 0x3E00, -2.0 in bf16 is 0xC000; f32 1.0 is 0x3F800000.
        let header = "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            + "\"b\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[4,6]},\"c\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[6,8]}}"
        let path = file("good.safetensors", header: header, data: [0, 0, 0x80, 0x3F, 0x00, 0x3E, 0x00, 0xC0])
        let reader = try SafetensorsFile(path: path)
        XCTAssertEqual(reader.metadata, ["k": "v"])
        let set = try reader.weightSet()
        XCTAssertEqual(set["a"]?.tensor.values, [1.0])
        XCTAssertEqual(set["b"]?.tensor.values, [1.5])
        XCTAssertEqual(set["c"]?.tensor.values, [-2.0])
        XCTAssertEqual(set["b"]?.sourceType, .f16)
    }
}
