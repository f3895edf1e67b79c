import Foundation
import XCTest
import IR
import IdleViTKit
import Importers
import TorchImporter

/// The reader on small files of every tensor kind (Fixtures/pth/unit, written by
/// generate_pth.py): the expected values are what torch itself reads, `.float().contiguous()`.
final class TorchReaderTests: XCTestCase {
    static func unit(_ name: String) -> String { TestPaths.fixture("pth/unit/\(name)") }

    /// Offsets into a shared storage, transposed / strided / permuted views, a 0-d tensor, F16,
    /// BF16, F64, an empty tensor, an nn.Parameter and a tensor with Python attributes; in the
    /// zip layout, the legacy stream, pickle protocols 1 and 5, another writer and folder name,
    /// and zip64 fields everywhere.
    func testViewsAndDtypesReadAsTorchReadsThem() throws {
        let expected = try SafetensorsFile(path: Self.unit("views-expected.safetensors")).weightSet()
        for file in ["views.pth", "views-legacy.pth", "views-protocol1.pth", "views-protocol5.pth", "renamed-folder.pth", "zip64.pth"] {
            let checkpoint = try TorchImporter.load(path: Self.unit(file))
            assertSameWeights(checkpoint.weights, expected, file)
            XCTAssertEqual(checkpoint.weights.names, ["contiguous_offset", "transposed", "strided", "permuted", "scalar", "row", "half",
                                                      "half_transposed", "bfloat16", "double_strided", "empty", "parameter", "with_attribute"],
                           "\(file): state-dict order")
            XCTAssertEqual(checkpoint.weights["scalar"]?.shape, [], file)
            XCTAssertEqual(checkpoint.weights["empty"]?.shape, [0, 4], file)
            XCTAssertEqual(checkpoint.weights["half_transposed"]?.sourceType, .f16, file)
            XCTAssertEqual(checkpoint.weights["double_strided"]?.sourceType, .f64, file)
        }
    }

    /// A contiguous, aligned F32 tensor points into the file's map; views are copies.
    func testContiguousFloat32IsMappedNotCopied() throws {
        let checkpoint = try TorchImporter.load(path: Self.unit("views.pth"))
        let mapped = try XCTUnwrap(checkpoint.weights["contiguous_offset"]).tensor
        XCTAssertTrue(mapped.storage.isFileMap)
        let transposed = try XCTUnwrap(checkpoint.weights["transposed"]).tensor
        XCTAssertFalse(transposed.storage.isFileMap)
        // Both views of one storage: the offset one starts 20 floats into it.
        let scalar = try XCTUnwrap(checkpoint.weights["scalar"]).tensor
        XCTAssertTrue(scalar.storage === mapped.storage)
        XCTAssertEqual(scalar.pointer - mapped.pointer, 39)
    }

    func testOtherContentsAndSelection() throws {
        let mixed = try TorchImporter.load(path: Self.unit("mixed.pth"))
        XCTAssertEqual(mixed.weights.names, ["w"])
        let entries = Dictionary(uniqueKeysWithValues: mixed.contents.entries.map { ($0.key, $0.summary) })
        XCTAssertEqual(entries["counts"], "tensor(U16 [3])")
        XCTAssertEqual(entries["step"], "tensor(I64 [])")
        XCTAssertEqual(entries["history"], "[0.5, 0.25]")
        XCTAssertEqual(entries["model"], "state dict of 1 tensors (loaded)")
        let ema = try TorchImporter.load(path: Self.unit("model_ema-only.pth"))
        XCTAssertEqual(ema.contents.stateDict, "model_ema")
        XCTAssertEqual(ema.weights.names, ["w"])
    }

    func testUnreadableInputsAreOneLineErrors() throws {
        for (file, fragment) in [("integer-weight.pth", "tensor 'position_ids': dtype int64 cannot be read as weights"),
                                 ("big-endian.pth", "big-endian"), ("legacy-big-endian.pth", "big-endian")] {
            do {
                _ = try TorchImporter.load(path: Self.unit(file))
                XCTFail("\(file) was accepted")
            } catch {
                XCTAssertTrue(error.description.hasPrefix(file + ": "), error.description)
                XCTAssertTrue(error.description.contains(fragment), error.description)
                XCTAssertEqual(error.description.split(separator: "\n").count, 1)
            }
        }
    }

    /// Detection by content: the zip and legacy signatures, and a safetensors file whose header
    /// length (640 = 0x280) starts with the same two bytes as a protocol-2 pickle.
    func testFormatDetection() throws {
        XCTAssertEqual(try FormatDetection.detect(path: Self.unit("views.pth")), .pytorch)
        XCTAssertEqual(try FormatDetection.detect(path: Self.unit("views-legacy.pth")), .pytorch)
        XCTAssertEqual(try FormatDetection.detect(path: TestPaths.fixture("pth/hf/pytorch_model.bin")), .pytorch)
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var header = Array("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}".utf8)
        header += [UInt8](repeating: 0x20, count: 640 - header.count)
        let path = folder.appendingPathComponent("odd.safetensors").path
        _ = FileManager.default.createFile(atPath: path, contents: Data([0x80, 0x02, 0, 0, 0, 0, 0, 0] + header + [0, 0, 0x80, 0x3F]))
        XCTAssertEqual(try FormatDetection.detect(path: path), .safetensors)
    }
}
