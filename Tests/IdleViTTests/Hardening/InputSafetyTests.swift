import Foundation
import XCTest
import IR
import Exporters
@testable import IdleViTCLI
#if canImport(Glibc)
import Glibc
#endif

/// The shared guards behind the hostile corpus: non-blocking regular-file opens, size-checked
/// reads, file identity, the signal-safe table of temporary files, `--max-memory` sizes and
/// the one-line message gate.
final class InputSafetyTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws { folder = TestPaths.temporaryFolder() }
    override func tearDown() { try? FileManager.default.removeItem(at: folder) }

    func testFIFOsAndDevicesAreRefusedWithoutBlocking() throws {
        let fifo = folder.appendingPathComponent("fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        let start = Date()
        XCTAssertThrowsError(try RegularFile.open(fifo)) { error in
            XCTAssertEqual("\(error)", "not a regular file (a FIFO)")
        }
        XCTAssertThrowsError(try RegularFile.read("/dev/zero", limit: Limits.textFileBytes)) { error in
            XCTAssertEqual("\(error)", "not a regular file (a character device)")
        }
        XCTAssertThrowsError(try RegularFile.open(folder.path)) { error in
            XCTAssertEqual("\(error)", "not a regular file (a directory)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 2, "opening a FIFO must not wait for a writer")
    }

    func testWholeReadsCheckTheSizeFirst() throws {
        let path = folder.appendingPathComponent("big.txt").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: nil), "cannot create a test file")
        XCTAssertEqual(truncate(path, off_t(3_000_000_000)), 0)  // a hole: nothing to read if we tried
        XCTAssertThrowsError(try RegularFile.read(path, limit: Limits.textFileBytes)) { error in
            XCTAssertTrue("\(error)".contains("3000000000 bytes, over the text file size limit"), "\(error)")
        }
        try Data("abc\n".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try RegularFile.read(path, limit: Limits.textFileBytes), Array("abc\n".utf8))
    }

    func testIdentityFollowsEverySpelling() throws {
        let path = folder.appendingPathComponent("m.bin").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data([1])), "cannot create a test file")
        let link = folder.appendingPathComponent("alias").path
        XCTAssertEqual(symlink(path, link), 0)
        let hard = folder.appendingPathComponent("twin").path
        XCTAssertEqual(Glibc.link(path, hard), 0)
        let same = [path, folder.path + "/./m.bin", folder.path + "//m.bin", link, hard].map(RegularFile.identity(of:))
        XCTAssertNotNil(same[0])
        XCTAssertTrue(same.allSatisfy { $0 == same[0] })
        XCTAssertNil(RegularFile.identity(of: folder.appendingPathComponent("missing").path))
        XCTAssertThrowsError(try refuseOutputs([link], overwriting: [path]))
        XCTAssertNoThrow(try refuseOutputs([folder.appendingPathComponent("new.bin").path], overwriting: [path]))
    }

    func testMaxMemorySizes() {
        XCTAssertEqual(ByteSize(argument: "1073741824")?.bytes, 1 << 30)
        XCTAssertEqual(ByteSize(argument: "512M")?.bytes, 512 << 20)
        XCTAssertEqual(ByteSize(argument: "4g")?.bytes, 4 << 30)
        XCTAssertEqual(ByteSize(argument: "1.5G")?.bytes, 3 << 29)
        XCTAssertEqual(ByteSize(argument: "2GB")?.bytes, 2 << 30)
        for bad in ["", "G", "-1G", "lots", "1e3", "0", "99999999999T", "nan", "1..2M"] {
            XCTAssertNil(ByteSize(argument: bad), bad)
        }
    }

    /// What the SIGINT handler deletes: registered temporary files, and only while registered.
    func testPendingTemporaryFilesTable() throws {
        AtomicFile.prepareForSignals()
        let kept = folder.appendingPathComponent("kept.bin").path
        let file = try AtomicFile(destination: kept)
        try file.write([1, 2, 3])
        XCTAssertTrue(FileManager.default.fileExists(atPath: file.temporaryPath))
        AtomicFile.removeAllPending()
        XCTAssertFalse(FileManager.default.fileExists(atPath: file.temporaryPath))
        // Slots are reused: many files one after another never exhaust the table.
        for i in 0..<200 {
            let other = try AtomicFile(destination: folder.appendingPathComponent("f\(i)").path)
            try other.write([UInt8(i & 0xFF)])
            try other.commit()
        }
        let last = try AtomicFile(destination: folder.appendingPathComponent("last").path)
        try last.write([9])
        AtomicFile.removeAllPending()
        XCTAssertFalse(FileManager.default.fileExists(atPath: last.temporaryPath))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".tmp-") }, [])
    }

    func testOneLineGate() {
        XCTAssertEqual("a\nb\r\n  c".lineSafe, "a; b; c")
        XCTAssertEqual("x\u{1b}[31my\u{202e}".lineSafe, "x\\u{1b}[31my\\u{202e}")
        // Already escaped text passes unchanged (no double escaping of backslashes).
        let escaped = "bad\nname".escapedForMessage
        XCTAssertEqual(escaped, "bad\\u{a}name")
        XCTAssertEqual(escaped.lineSafe, escaped)
    }
}
