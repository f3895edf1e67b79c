import Foundation
import XCTest
import IdleViTKit
import Importers

/// Fixtures/hostile/pth-*.pth (generate_pth.py): pickles that run os.system / eval / exec /
/// subprocess through REDUCE, INST, OBJ, NEWOBJ, BUILD's __setstate__ and STACK_GLOBAL (each
/// checked by the generator to create MARKER when Python loads it), tensor rebuilds and storages
/// swapped for other callables, zip traversal / bombs / overlaps, deep nesting, memo and integer
/// extremes, truncations and out-of-range views. Every one: exit 2, one line naming the file,
/// no marker, nothing written.
final class TorchHostileTests: XCTestCase {
    static let marker = "/tmp/idlevit-pth-marker"

    static var hostileFiles: [String] {
        let folder = TestPaths.fixture("hostile")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.filter { $0.hasPrefix("pth-") }.sorted().map { folder + "/" + $0 }
    }

    func testEveryHostileFileIsRefusedAndNothingRuns() throws {
        try? FileManager.default.removeItem(atPath: Self.marker)
        let files = Self.hostileFiles
        XCTAssertGreaterThanOrEqual(files.count, 29)
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        for path in files {
            try expectExit2(path)
            expectLoadError(path)
            // convert writes nothing either (checked for the files whose payload runs code).
            guard ["reduce", "stack-global", "inst", "obj", "newobj", "build", "swapped", "legacy-system", "traversal", "absolute"]
                .contains(where: { displayName(path).contains($0) }) else { continue }
            let output = folder.appendingPathComponent("out.safetensors").path
            let convert = try runIdleViT(["convert", path, "--to", "safetensors", "-o", output])
            XCTAssertEqual(convert.status, 2, path)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [], path)
            XCTAssertFalse(FileManager.default.fileExists(atPath: Self.marker), "\(path) created the marker")
        }
    }

    /// The messages say what was found, by name.
    func testMessagesNameWhatTheFileAttempted() throws {
        for (file, fragment) in [
            ("pth-reduce-system.pth", "refers to posix.system"),
            ("pth-reduce-eval.pth", "refers to __builtin__.eval"),
            ("pth-stack-global-exec.pth", "refers to builtins.exec"),
            ("pth-inst-popen.pth", "refers to subprocess.Popen"),
            ("pth-obj-system.pth", "refers to posix.system"),
            ("pth-newobj-popen.pth", "refers to subprocess.Popen"),
            ("pth-build-setstate.pth", "refers to posix.system"),
            ("pth-legacy-system.pth", "refers to posix.system"),
            ("pth-build-setstate-filehandler.pth", "tensor 'head.weight': is a call of argparse.Namespace (NEWOBJ, not run), not a tensor rebuild"),
            ("pth-rebuild-swapped.pth", "tensor 'head.weight': is a call of logging.FileHandler (REDUCE, not run), not a tensor rebuild"),
            ("pth-storage-swapped.pth", "its storage is a call of logging.FileHandler (REDUCE, not run), not a storage"),
            ("pth-zip-traversal.pth", "is not a plain relative path inside the archive"),
            ("pth-zip-absolute.pth", "'/tmp/idlevit-pth-marker' is not a plain relative path"),
            ("pth-zip-outside-folder.pth", "'other/data/0' is outside the archive's folder 'archive'"),
            ("pth-zip-bomb.pth", "'archive/data/0' is compressed"),
            ("pth-zip-overlap.pth", "overlap"),
            ("pth-deep-marks.pth", "more than 65536 nested MARKs"),
            ("pth-memo-huge-index.pth", "memo entry 4294967294 was never stored"),
            ("pth-long-huge.pth", "an integer of 2147483647 bytes"),
            ("pth-view-past-storage.pth", "needs 48 bytes of storage '0', which has 16"),
            ("pth-storage-larger-than-entry.pth", "declared as 4398046511104 bytes, its zip entry holds 16"),
            ("pth-size-overflow.pth", "overflows"),
            ("pth-broadcast.pth", "broadcast view"),
            ("pth-storage-key-traversal.pth", "storage key '../byteorder' is not a plain name"),
            ("pth-truncated-pickle.pth", "ends before its STOP"),
            ("pth-truncated-legacy.pth", "runs past the end of the file"),
            ("pth-zip-truncated.pth", "no zip end of central directory"),
        ] {
            expectLoadError(TestPaths.fixture("hostile/" + file), mentioning: fragment)
        }
    }
}
