import Foundation
import XCTest
import IR
import Importers
import HDF5Importer
import IdleViTKit

/// HDF5 state dicts: weights equal to the safetensors fixtures bit for bit, parity through
/// `idlevit verify`, and hostile files rejected with one clear line (never a crash or hang).
final class HDF5ImportTests: XCTestCase {
    /// Each HDF5 fixture, the safetensors file holding the same tensors (after the same
    /// rounding), and the references `verify` must pass against.
    struct Fixture {
        var h5: String
        var same: String
        var sourceType: ElementType
        var layout: String
        var references: [String]
    }

    static let fixtures = [
        Fixture(h5: "micro-distilled/weights-flat.h5", same: "micro-distilled/model.safetensors", sourceType: .f32,
                layout: "flat", references: ["micro-distilled/reference.safetensors"]),
        Fixture(h5: "micro-distilled/weights-nested.h5", same: "micro-distilled/model.safetensors", sourceType: .f32,
                layout: "nested", references: ["micro-distilled/reference.safetensors"]),
        Fixture(h5: "tiny12/weights-nested-f16.h5", same: "tiny12/model-f16.safetensors", sourceType: .f16,
                layout: "nested", references: ["tiny12/reference-f16.safetensors", "tiny12/reference-h5f16.safetensors"]),
    ]

    func testTensorsEqualTheSafetensorsFixtures() throws {
        for fixture in Self.fixtures {
            let imported = try HDF5Importer.load(path: TestPaths.fixture(fixture.h5))
            let expected = try SafetensorsFile(path: TestPaths.fixture(fixture.same)).weightSet()
            assertSameWeights(imported.weights, expected, fixture.h5)
            for weight in imported.weights.weights {
                XCTAssertEqual(weight.sourceType, fixture.sourceType, "\(fixture.h5): \(weight.name)")
            }
            let fromHDF5 = try ModelLoader.load(TestPaths.fixture(fixture.h5))
            let fromSafetensors = try ModelLoader.load(TestPaths.fixture(fixture.same))
            XCTAssertEqual(fromHDF5.format, .hdf5)
            XCTAssertEqual(fromHDF5.recognized.architecture, fromSafetensors.recognized.architecture, fixture.h5)
            let layout = fromHDF5.details.first { $0.0 == "HDF5 layout" }?.1 ?? ""
            XCTAssertTrue(layout.hasPrefix(fixture.layout), "\(fixture.h5): \(layout)")
        }
    }

    func testAttributesBecomeMetadataAndStorageIsDescribed() throws {
        let tiny = try ModelLoader.load(TestPaths.fixture("tiny12/weights-nested-f16.h5"))
        XCTAssertEqual(tiny.sourceMetadata["source"], "idlevit fixtures")
        XCTAssertEqual(tiny.sourceMetadata["architecture"], "deit")
        XCTAssertTrue(tiny.details.contains { $0.0 == "HDF5 layout" && $0.1.contains("'state_dict'") })
        XCTAssertTrue(tiny.sourceTensors.allSatisfy { $0.name.hasPrefix("state_dict/") && $0.dtype == "F16" })
        let nested = try ModelLoader.load(TestPaths.fixture("micro-distilled/weights-nested.h5"))
        XCTAssertTrue(nested.details.contains { $0.0 == "HDF5 storage" && $0.1.contains("chunked") && $0.1.contains("gzip") })
        // A string attribute reaches the recogniser: dim 8 has no DeiT default head count.
        let valid = try ModelLoader.load(TestPaths.fixture("hostile/valid.h5"))
        XCTAssertEqual(valid.recognized.architecture.heads, 1)

        let result = try runIdleViT(["inspect", TestPaths.fixture("tiny12/weights-nested-f16.h5")])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("HDF5"), result.stdout)
        XCTAssertTrue(result.stdout.contains("idlevit fixtures"), result.stdout)
    }

    /// float64 and big-endian files hold the tiny valid.h5 tensors converted exactly
    /// (float64 and big-endian float32 hold the same values, float16 their f16 rounding).
    func testOtherElementTypesAndByteOrdersConvertExactly() throws {
        let control = try HDF5Importer.load(path: TestPaths.fixture("hostile/valid.h5")).weights
        let variants: [(String, ElementType, (Float) -> Float)] = [
            ("float64.h5", .f64, { $0 }), ("float32-be.h5", .f32, { $0 }), ("float16-be.h5", .f16, { Float(Float16($0)) }),
        ]
        for (name, sourceType, rounding) in variants {
            let weights = try HDF5Importer.load(path: TestPaths.fixture("hostile/" + name)).weights
            XCTAssertEqual(weights.names.sorted(), control.names.sorted(), name)
            for weight in control.weights {
                guard let ours = weights[weight.name] else { continue }
                XCTAssertEqual(ours.sourceType, sourceType, "\(name): \(weight.name)")
                XCTAssertEqual(ours.shape, weight.shape, "\(name): \(weight.name)")
                XCTAssertEqual(ours.tensor.values, weight.tensor.values.map(rounding), "\(name): \(weight.name)")
            }
        }
    }

    func testVerifyPassesOnEveryLayout() throws {
        for fixture in Self.fixtures {
            let model = TestPaths.fixture(fixture.h5)
            let input = TestPaths.fixture(fixture.h5.split(separator: "/")[0] + "/input.safetensors")
            for reference in fixture.references {
                let result = try runIdleViT(["verify", model, "--input", input, "--reference", TestPaths.fixture(reference)])
                XCTAssertEqual(result.status, 0, "\(fixture.h5) vs \(reference): \(result.stderr)\n\(result.stdout)")
            }
        }
    }

    // MARK: - Hostile files

    /// The committed hostile files, each broken in one way, and what the error must say.
    func testHostileFixturesAreRejectedWithOneLine() throws {
        let expectations = [
            "wrong-shape.h5": "tensor 'blocks.0.attn.qkv.weight' has shape [24, 7], expected [24, 8]",
            "missing-dataset.h5": "missing tensor 'blocks.0.mlp.fc1.weight'",
            "integer-dataset.h5": "tensor 'blocks.0.attn.proj.bias': stores 64-bit integer values",
            "external-storage.h5": "tensor 'head.bias': keeps its data in external raw files",
            "external-link.h5": "is a soft or external link",
            "lzf-filter.h5": "is compressed with lzf",
            "newer-format.h5": "uses a newer HDF5 format than libhdf5",
            "partial-chunks.h5": "tensor 'blocks.0.attn.qkv.bias': 3 of its 6 chunks are stored",
        ]
        for (name, fragment) in expectations {
            let path = TestPaths.fixture("hostile/" + name)
            let message = expectLoadError(path)
            XCTAssertTrue(message.contains(fragment), "\(name): \(message)")
        }
        for name in ["wrong-shape.h5", "external-storage.h5"] {
            try expectExit2(TestPaths.fixture("hostile/" + name))
        }
    }

    func testTruncatedFilesAreRejected() throws {
        try withScratch { folder in
            for fixture in Self.fixtures {
                let bytes = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture(fixture.h5)))
                for length in [8, 40, 100, 1000, 4096, bytes.count / 3, bytes.count / 2, bytes.count - 100, bytes.count - 1] {
                    let path = try write(bytes.prefix(length), to: folder, named: "truncated-\(length).h5")
                    let message = expectLoadError(path)
                    XCTAssertTrue(message.contains("truncated") || message.contains("superblock"), message)
                }
            }
            try expectExit2(try write(Data(try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture(Self.fixtures[0].h5))).prefix(5000)),
                                      to: folder, named: "truncated-cli.h5"))
        }
    }

    func testZeroedSuperblockAndRandomBytesBehindTheSignatureAreRejected() throws {
        try withScratch { folder in
            let original = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("micro-distilled/weights-flat.h5")))
            var zeroed = original
            zeroed.replaceSubrange(8..<96, with: Data(count: 88))
            let zeroedMessage = expectLoadError(try write(zeroed, to: folder, named: "zeroed-superblock.h5"))
            XCTAssertTrue(zeroedMessage.contains("superblock"), zeroedMessage)
            var zeroedWhole = original
            zeroedWhole.replaceSubrange(0..<96, with: Data(count: 96))
            _ = expectLoadError(try write(zeroedWhole, to: folder, named: "zeroed-with-signature.h5"))

            for seed: UInt64 in 1...4 {
                var generator = SeededRandom(seed: seed)
                var random = Data(original.prefix(8))
                random.append(contentsOf: (0..<(seed == 1 ? 48 : 65_536)).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
                _ = expectLoadError(try write(random, to: folder, named: "random-\(seed).h5"))
            }
            var random = Data(original.prefix(8))
            var generator = SeededRandom(seed: 99)
            random.append(contentsOf: (0..<4096).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
            try expectExit2(try write(random, to: folder, named: "random-cli.h5"))
        }
    }

    /// A dataset name with a newline (damage, never a state-dict key) is refused, and shown
    /// escaped so the message stays on one line.
    func testControlCharactersInNamesAreRefusedAndEscaped() throws {
        try withScratch { folder in
            var bytes = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("hostile/valid.h5")))
            let name = Data("head.bias".utf8)
            let position = try XCTUnwrap(bytes.range(of: name)).lowerBound
            bytes[position + 4] = UInt8(ascii: "\n")
            let message = expectLoadError(try write(bytes, to: folder, named: "newline-name.h5"))
            XCTAssertTrue(message.contains("'head\\u{a}bias'"), message)
            XCTAssertTrue(message.contains("not printable UTF-8"), message)
        }
    }

    /// Bit flips may land in tensor data (the file stays valid) or in metadata (an error):
    /// either is fine, a crash or a multi-line message is not.
    func testBitFlipsGiveAModelOrOneLineError() throws {
        try withScratch { folder in
            var errors = 0
            var runs = 0
            for fixture in Self.fixtures {
                let original = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture(fixture.h5)))
                for seed: UInt64 in 1...6 {
                    var generator = SeededRandom(seed: seed)
                    var flipped = original
                    for flip in 0..<16 {
                        // Half the flips in the first 8 KB, where the superblock and root group live.
                        let range = flip % 2 == 0 ? min(8192, flipped.count) : flipped.count
                        let position = 8 + Int(generator.next() % UInt64(range - 8))
                        flipped[position] ^= UInt8(1) << (generator.next() % 8)
                    }
                    let path = try write(flipped, to: folder, named: "flipped-\(seed).h5")
                    runs += 1
                    do throws(ImportError) {
                        _ = try ModelLoader.load(path)
                    } catch {
                        errors += 1
                        XCTAssertEqual(error.description.split(separator: "\n").count, 1, error.description)
                        XCTAssertTrue(error.description.hasPrefix("flipped-\(seed).h5: "), error.description)
                    }
                }
            }
            XCTAssertGreaterThan(errors, runs / 3, "most metadata flips must be caught")
        }
    }

    /// A reader that crashes, hangs or exits strangely becomes an ImportError; nothing is
    /// left in the temporary folder.
    func testReaderCrashesAndHangsAreContained() throws {
        try withScratch { folder in
            let model = TestPaths.fixture("hostile/valid.h5")
            let cases = [
                ("crash", "kill -SEGV $$", "libhdf5 crashed reading it (signal 11, SIGSEGV): the file is corrupt"),
                ("abort", "kill -ABRT $$", "libhdf5 crashed reading it (signal 6, SIGABRT)"),
                ("hang", "exec sleep 60", "did not finish reading its structure within 1 s"),
                ("hang-in-data", "touch \"$2\(HDF5ReaderProtocol.plannedSuffix)\"; exec sleep 60", "did not finish reading its data within 1 s"),
                ("odd-exit", "echo 'something odd' >&2; exit 9", "the HDF5 reader failed (exit status 9): something odd"),
            ]
            let temporary = folder.appendingPathComponent("tmp")
            try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
            setenv("TMPDIR", temporary.path, 1)
            setenv(HDF5ReaderProtocol.timeoutVariable, "1", 1)
            defer {
                unsetenv("TMPDIR")
                unsetenv(HDF5ReaderProtocol.timeoutVariable)
                unsetenv(HDF5ReaderProtocol.executableVariable)
            }
            for (name, script, fragment) in cases {
                let reader = folder.appendingPathComponent("reader-\(name).sh")
                try ("#!/bin/sh\n" + script + "\n").write(to: reader, atomically: true, encoding: .utf8)
                chmod(reader.path, 0o755)
                setenv(HDF5ReaderProtocol.executableVariable, reader.path, 1)
                let start = Date()
                let message = expectLoadError(model)
                XCTAssertTrue(message.contains(fragment), "\(name): \(message)")
                XCTAssertLessThan(Date().timeIntervalSince(start), 10, "\(name) must be bounded by the timeout")
                if name == "crash" { try expectExit2(model) }
            }
            unsetenv(HDF5ReaderProtocol.executableVariable)
            // The real reader, for a partial file left by nobody and a clean folder after.
            _ = try ModelLoader.load(model)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: temporary.path), [])
        }
    }

    /// Files on which Debian's libhdf5 1.10.8 really crashes (NULL dereference) and really
    /// loops forever: idlevit reports both in one line. A fixed libhdf5 may reject them
    /// instead, which is as good.
    func testRealLibhdf5CrashAndHangAreContained() throws {
        setenv(HDF5ReaderProtocol.timeoutVariable, "2", 1)
        defer { unsetenv(HDF5ReaderProtocol.timeoutVariable) }
        let crash = expectLoadError(TestPaths.fixture("hostile/heap-crash.h5"))
        XCTAssertTrue(crash.contains("libhdf5 crashed reading it (signal 11, SIGSEGV)") || crash.contains("(libhdf5: "), crash)
        let start = Date()
        let loop = expectLoadError(TestPaths.fixture("hostile/heap-loop.h5"))
        XCTAssertTrue(loop.contains("did not finish reading its structure within 2 s") || loop.contains("(libhdf5: "), loop)
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
        try expectExit2(TestPaths.fixture("hostile/heap-crash.h5"))
    }

    // MARK: - Helpers

    func write(_ bytes: Data, to folder: URL, named name: String) throws -> String {
        let url = folder.appendingPathComponent(name)
        try bytes.write(to: url)
        return url.path
    }

    func withScratch(_ body: (URL) throws -> Void) throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try body(folder)
    }
}
