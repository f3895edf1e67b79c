import Foundation
import XCTest
import IR
import Importers
@testable import ONNXImporter
import IdleViTKit

/// Hostile ONNX files, generated at test time from the fixtures or written byte by byte:
/// each must give an ImportError (and, through the CLI, exit 2 with one line on stderr),
/// never a crash, a hang or a silently wrong import.
final class ONNXHostileTests: XCTestCase {
    static let source = "micro-distilled/model-opset17.onnx"

    func testTruncatedFilesAreRejected() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture(Self.source)))
        for cut in [1, 2, 7, 100, 4096, data.count / 3, data.count / 2, data.count - 7, data.count - 1] {
            let path = folder.appendingPathComponent("cut-\(cut).onnx").path
            try data.prefix(cut).write(to: URL(fileURLWithPath: path))
            expectLoadError(path)
        }
        try expectExit2(folder.appendingPathComponent("cut-\(data.count / 2).onnx").path)
        try expectExit2(folder.appendingPathComponent("cut-100.onnx").path)
    }

    /// Single-byte corruptions, mostly in the graph structure (nodes come first in torch's
    /// files): each either still imports (a flipped weight bit) or is refused cleanly.
    func testBitFlipsNeverCrash() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let original = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture(Self.source)))
        var random = SeededRandom(seed: 0x1D1E_017)
        var rejected = 0
        for trial in 0..<60 {
            var data = original
            let span = trial % 4 == 0 ? data.count : min(data.count, 80_000)
            let position = Int(random.next() % UInt64(span))
            data[position] ^= UInt8(truncatingIfNeeded: random.next() % 255 + 1)
            let path = folder.appendingPathComponent("flip-\(trial).onnx").path
            try data.write(to: URL(fileURLWithPath: path))
            do {
                _ = try ModelLoader.load(path)
            } catch {
                rejected += 1
                XCTAssertEqual(error.description.split(separator: "\n").count, 1, error.description)
            }
        }
        XCTAssertGreaterThan(rejected, 10, "most structural corruptions must be refused")
    }

    func testAbsurdDeclaredSizesAreRejected() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        func write(_ name: String, _ bytes: [UInt8]) -> String {
            let path = folder.appendingPathComponent(name).path
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
            return path
        }
        // A graph field whose length prefix claims a terabyte.
        var huge = ONNXProtoWriter()
        huge.int(1, 8)
        huge.tag(7, 2)
        huge.varint(1 << 40)
        huge.bytes += [0x0A, 0x00]
        expectLoadError(write("huge-graph.onnx", huge.bytes), mentioning: "malformed")

        // Millions of empty nodes: a few MB on disk, gigabytes once protobuf-c unpacks them.
        var bomb = ONNXProtoWriter()
        bomb.int(1, 8)
        bomb.tag(7, 2)
        let emptyNodes = 3_000_000
        bomb.varint(UInt64(emptyNodes * 2))
        bomb.bytes += [UInt8](repeating: 0, count: emptyNodes * 2).enumerated().map { $0.offset % 2 == 0 ? 0x0A : 0x00 }
        expectLoadError(write("node-bomb.onnx", bomb.bytes), mentioning: "expansion")

        let cases: [(String, (inout ONNXProtoWriter) -> Void, String)] = [
            ("overflowing-dims", { t in for _ in 0..<3 { t.int(1, Int64(Int32.max)) }; t.int(2, 1); t.bytes(9, [0, 0, 0, 0]) }, "overflow"),
            ("negative-dim", { t in t.int(1, -1); t.int(2, 1); t.bytes(9, [0, 0, 0, 0]) }, "dimension 0 is -1"),
            ("short-raw-data", { t in t.int(1, 1000); t.int(2, 1); t.bytes(9, [0, 0, 0, 0, 0, 0, 0, 0]) }, "raw_data holds 8 bytes"),
            ("short-float-data", { t in t.int(1, 10); t.int(2, 1); t.packedFloats(4, [1, 2, 3]) }, "float_data holds 3 values"),
            ("string-tensor", { t in t.int(1, 1); t.int(2, 8); t.bytes(6, [65]) }, "not supported"),
            ("newline-name", { t in t.string(8, "evil\nname"); t.int(1, -1); t.int(2, 1) }, "evil\\u{a}name"),
        ]
        for (name, tensor, fragment) in cases {
            expectLoadError(write(name + ".onnx", Self.model(initializer: tensor)), mentioning: fragment)
        }
        try expectExit2(folder.appendingPathComponent("huge-graph.onnx").path)
        try expectExit2(folder.appendingPathComponent("overflowing-dims.onnx").path)
    }

    /// A graph that computes something other than DeiT must be refused, not imported with
    /// DeiT's semantics: constants of the opset-13 export changed in place (same byte length).
    func testAlteredConstantsAreRefused() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let original = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("micro/model-opset13.onnx")))
        func floatBytes(_ value: Float) -> Data { withUnsafeBytes(of: value.bitPattern.littleEndian) { Data($0) } }
        let mutations: [(String, Float, Float, String)] = [
            ("scale", 0.125, 0.25, "attention scale"),
            ("gelu", Float(2.0.squareRoot()), 1.5, "GELU"),
            ("variance", 2.0, 3.0, "(x - mean)^2"),
        ]
        for (name, from, to, fragment) in mutations {
            var data = original
            let replaced = replaceAll(floatBytes(from), with: floatBytes(to), in: &data)
            XCTAssertGreaterThan(replaced, 0, name)
            let path = folder.appendingPathComponent("\(name).onnx").path
            try data.write(to: URL(fileURLWithPath: path))
            expectLoadError(path, mentioning: fragment)
        }
    }

    /// Unsupported ops are all listed in one error, each with its op, opset and position,
    /// including those downstream of the first one.
    func testEveryUnsupportedOpIsListedOnce() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var data = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture(Self.source)))
        // Same-length renames keep the protobuf framing: Erf -> Elu, Softmax -> Sigmoid.
        for (from, to) in [("Erf", "Elu"), ("Softmax", "Sigmoid")] {
            replaceAll(Data(from.utf8), with: Data(to.utf8), in: &data)
        }
        let path = folder.appendingPathComponent("unsupported.onnx").path
        try data.write(to: URL(fileURLWithPath: path))
        do {
            _ = try ONNXImporter.load(path: path)
            XCTFail("accepted")
        } catch {
            guard case .unsupportedNodes(_, let nodes) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(nodes.filter { $0.contains("(Elu, opset 17): op Elu is not supported; reads the output of") }.count, 4, "\(nodes)")
            XCTAssertEqual(nodes.filter { $0.contains("(Sigmoid, opset 17): op Sigmoid is not supported") }.count, 4, "\(nodes)")
            XCTAssertEqual(nodes.count, 8, "\(nodes)")
        }
        try expectExit2(path)
    }

    /// Initializer encodings other than raw float32: typed fields (float_data, float16 and
    /// bfloat16 bit patterns in int32_data, int64_data, double_data) and raw float16 / bfloat16.
    func testTypedAndHalfPrecisionInitializersDecode() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let half: [UInt16] = [0x3C00, 0xC000, 0x3800]      // 1, -2, 0.5 in float16
        let brain: [UInt16] = [0x3F80, 0xC000, 0x3F00]     // 1, -2, 0.5 in bfloat16
        func raw(_ bits: [UInt16]) -> [UInt8] { bits.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] } }
        let cases: [(String, (inout ONNXProtoWriter) -> Void, [Double], String)] = [
            ("float_data", { t in t.int(1, 3); t.int(2, 1); t.packedFloats(4, [1, -2, 0.5]) }, [1, -2, 0.5], "F32"),
            ("f16-int32", { t in t.int(1, 3); t.int(2, 10); t.packedVarints(5, half.map(UInt64.init)) }, [1, -2, 0.5], "F16"),
            ("bf16-int32", { t in t.int(1, 3); t.int(2, 16); t.packedVarints(5, brain.map(UInt64.init)) }, [1, -2, 0.5], "BF16"),
            ("f16-raw", { t in t.int(1, 3); t.int(2, 10); t.bytes(9, raw(half)) }, [1, -2, 0.5], "F16"),
            ("bf16-raw", { t in t.int(1, 3); t.int(2, 16); t.bytes(9, raw(brain)) }, [1, -2, 0.5], "BF16"),
            ("int64_data", { t in t.int(1, 3); t.int(2, 7); t.packedVarints(7, [5, UInt64(bitPattern: -1), 0]) }, [5, -1, 0], "I64"),
            ("double_data", { t in t.int(1, 3); t.int(2, 11)
                t.bytes(10, [1.0, -2.0, 0.5].flatMap { (v: Double) in withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init) }) },
             [1, -2, 0.5], "F64"),
        ]
        for (name, tensor, expected, dtype) in cases {
            let path = folder.appendingPathComponent(name + ".onnx").path
            _ = FileManager.default.createFile(atPath: path, contents: Data(Self.model(initializer: tensor)))
            let model = try ONNXReader.read(path: path)
            let decoded = try XCTUnwrap(model.graph.initializers.first, name)
            XCTAssertEqual(decoded.shape, [3], name)
            XCTAssertEqual(decoded.doubles, expected, name)
            XCTAssertEqual(decoded.dataType.shortName, dtype, name)
        }
    }

    /// A one-initializer model around `tensor` (name "w").
    private static func model(initializer tensor: (inout ONNXProtoWriter) -> Void) -> [UInt8] {
        var model = ONNXProtoWriter()
        model.int(1, 8)
        model.message(7) { graph in
            graph.message(5) { t in t.string(8, "w"); tensor(&t) }
            graph.message(11) { input in
                input.string(1, "x")
                input.message(2) { type in type.message(1) { tensorType in
                    tensorType.int(1, 1)
                    tensorType.message(2) { shape in for dim in [1, 3, 32, 32] { shape.message(1) { d in d.int(1, Int64(dim)) } } }
                } }
            }
        }
        model.message(8) { opset in opset.string(1, ""); opset.int(2, 17) }
        return model.bytes
    }

    /// Copies the external-data fixture into a fresh folder, rewriting the location string
    /// (same length, so the protobuf framing stays valid).
    private func externalCopy(location: String, in folder: URL) throws -> String {
        let source = URL(fileURLWithPath: TestPaths.fixture("micro/external"))
        var model = try Data(contentsOf: source.appendingPathComponent("model.onnx"))
        let original = Data("model.onnx.data".utf8)
        precondition(location.utf8.count == original.count)
        replaceAll(original, with: Data(location.utf8), in: &model)
        let path = folder.appendingPathComponent("model.onnx").path
        try model.write(to: URL(fileURLWithPath: path))
        return path
    }

    func testExternalDataCannotLeaveTheModelFolder() throws {
        let root = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let realData = URL(fileURLWithPath: TestPaths.fixture("micro/external/model.onnx.data"))

        let absolute = root.appendingPathComponent("absolute")
        try FileManager.default.createDirectory(at: absolute, withIntermediateDirectories: true)
        expectLoadError(try externalCopy(location: "/etc/ld.so.conf", in: absolute), mentioning: "absolute path")

        let parent = root.appendingPathComponent("parent")
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: realData, to: root.appendingPathComponent("model.onnx.d"))
        expectLoadError(try externalCopy(location: "../model.onnx.d", in: parent), mentioning: "'..'")

        let symlink = root.appendingPathComponent("symlink")
        try FileManager.default.createDirectory(at: symlink, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: symlink.appendingPathComponent("escape.onnx.dat"), withDestinationURL: realData)
        let escaping = try externalCopy(location: "escape.onnx.dat", in: symlink)
        expectLoadError(escaping, mentioning: "outside the model's folder")
        try expectExit2(escaping)

        // A symlink that stays inside the folder is fine.
        let inside = root.appendingPathComponent("inside")
        try FileManager.default.createDirectory(at: inside, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: realData, to: inside.appendingPathComponent("real.onnx.data"))
        try FileManager.default.createSymbolicLink(atPath: inside.appendingPathComponent("alias.onnx.data").path, withDestinationPath: "real.onnx.data")
        XCTAssertNoThrow(try ModelLoader.load(try externalCopy(location: "alias.onnx.data", in: inside)))

        let missing = root.appendingPathComponent("missing")
        try FileManager.default.createDirectory(at: missing, withIntermediateDirectories: true)
        expectLoadError(try externalCopy(location: "model.onnx.data", in: missing), mentioning: "cannot be opened")
    }

    func testExternalDataPastTheEndOfItsFileIsRejected() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = try externalCopy(location: "model.onnx.data", in: folder)
        let data = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("micro/external/model.onnx.data")))
        try data.prefix(data.count / 2).write(to: folder.appendingPathComponent("model.onnx.data"))
        expectLoadError(path, mentioning: "past the end")
        try expectExit2(path)
    }
}

/// Replaces every occurrence of `pattern` in `data` by `replacement` (of the same length, so
/// that a protobuf's framing stays valid); returns how many were replaced.
@discardableResult
private func replaceAll(_ pattern: Data, with replacement: Data, in data: inout Data) -> Int {
    var searchRange = data.startIndex..<data.endIndex
    var replaced = 0
    while let found = data.range(of: pattern, in: searchRange) {
        data.replaceSubrange(found, with: replacement)
        searchRange = found.upperBound..<data.endIndex
        replaced += 1
    }
    return replaced
}

/// Just enough protobuf encoding to write hostile models by hand.
private struct ONNXProtoWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func tag(_ field: Int, _ wireType: Int) { varint(UInt64(field << 3 | wireType)) }

    mutating func int(_ field: Int, _ value: Int64) {
        tag(field, 0)
        varint(UInt64(bitPattern: value))
    }

    mutating func bytes(_ field: Int, _ payload: [UInt8]) {
        tag(field, 2)
        varint(UInt64(payload.count))
        bytes += payload
    }

    mutating func string(_ field: Int, _ text: String) { bytes(field, Array(text.utf8)) }

    mutating func packedVarints(_ field: Int, _ values: [UInt64]) {
        var inner = ONNXProtoWriter()
        for value in values { inner.varint(value) }
        bytes(field, inner.bytes)
    }

    mutating func packedFloats(_ field: Int, _ values: [Float]) {
        bytes(field, values.flatMap { value in withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init) })
    }

    mutating func message(_ field: Int, _ build: (inout ONNXProtoWriter) -> Void) {
        var inner = ONNXProtoWriter()
        build(&inner)
        bytes(field, inner.bytes)
    }
}
