import Foundation
import XCTest

/// `idlevit eval` end to end on Fixtures/eval, whose labels were derived from timm's predictions
/// with the tiny12 model (Fixtures/generate_eval.py): expected.json holds, per file, the label's
/// rank and the top-1 class under timm's dense forward and the Python IdleViT reference. The
/// expected accuracies below are counted from those records, never from idlevit's output.
///
/// A debug build runs tiny12 at ~1.5 s per image, so the model-running tests use `--limit`
/// subsets (which `--limit` picks is spelled out here from the sorted list, independently).
final class EvalCLITests: XCTestCase {
    static let model = TestPaths.fixture("tiny12/model.safetensors")
    static let imagenet = TestPaths.fixture("eval/imagenet")
    static let byIndex = TestPaths.fixture("eval/by-index")
    static let labels = TestPaths.fixture("eval/labels.csv")

    /// One file's record in expected.json.
    struct Record {
        var file: String
        var label: Int
        var failed: Bool
        /// Per model ("dense", "idle-0.5", "idle-0.7"): the label's rank and the top-1 class.
        var rank: [String: Int]
        var top1: [String: Int]
    }

    static func records(_ layout: String) throws -> [Record] {
        let data = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("eval/expected.json")))
        let document = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let layouts = try XCTUnwrap(document["layouts"] as? [String: Any])
        let files = try XCTUnwrap((layouts[layout] as? [String: Any])?["files"] as? [[String: Any]])
        return try files.map { entry in
            var record = Record(file: try XCTUnwrap(entry["file"] as? String), label: try XCTUnwrap(entry["label"] as? Int),
                                failed: entry["failed"] as? Bool ?? false, rank: [:], top1: [:])
            for model in ["dense", "idle-0.5", "idle-0.7"] {
                guard let values = entry[model] as? [String: Int] else { continue }
                record.rank[model] = values["rank"]
                record.top1[model] = values["top1"]
            }
            return record
        }
    }

    /// `--limit n` picks entry floor(i * count / n) of the sorted list, for i < n.
    static func subset(_ records: [Record], limit: Int) -> [Record] {
        (0..<limit).map { records[$0 * records.count / limit] }
    }

    struct Expected {
        var images = 0, top1 = 0, top5 = 0
        var failed: [String] = []
        init(_ records: [Record], model: String) {
            for record in records {
                guard let rank = record.rank[model] else { failed.append(record.file); continue }
                images += 1
                if rank < 1 { top1 += 1 }
                if rank < 5 { top5 += 1 }
            }
        }
    }

    private func json(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let result = try runIdleViT(arguments + ["--json"])
        XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], file: file, line: line)
    }

    private func failedNames(_ document: [String: Any]) -> [String] {
        ((document["failed"] as? [[String: Any]]) ?? []).compactMap { $0["file"] as? String }
    }

    /// The held-out ImageNet-layout folder (JPEG and PNG): dense top-1/top-5 as timm counts them,
    /// IdleViT r = 0.7 as the Python reference counts them, and their agreement, in one pass.
    func testImageNetLayoutMatchesTimmAndTheReference() throws {
        let records = EvalCLITests.subset(try EvalCLITests.records("imagenet"), limit: 3)
        XCTAssertTrue(records.contains { $0.file.hasSuffix(".jpg") } && records.contains { $0.file.hasSuffix(".png") })
        let dense = Expected(records, model: "dense"), idle = Expected(records, model: "idle-0.7")
        let agreeing = records.filter { $0.top1["dense"] == $0.top1["idle-0.7"] }.count
        // The subset is not a trivial one: some right, some wrong, dense and idle differ.
        XCTAssertTrue(0 < dense.top1 && dense.top1 < dense.top5 && dense.top5 < records.count)
        XCTAssertTrue(0 < agreeing && agreeing < records.count)

        let document = try json(["eval", EvalCLITests.model, "--images", EvalCLITests.imagenet, "--limit", "3",
                                 "--keep-ratio", "0.7", "--compare-dense", "--batch", "2"])  // 2 batches of 2, one row of padding
        XCTAssertEqual(document["images"] as? Int, 3)
        XCTAssertEqual(document["top1_count"] as? Int, idle.top1)
        XCTAssertEqual(document["top5_count"] as? Int, idle.top5)
        XCTAssertEqual(document["top1"] as? Double ?? -1, Double(idle.top1) / 3, accuracy: 1e-12)
        XCTAssertEqual(document["top5"] as? Double ?? -1, Double(idle.top5) / 3, accuracy: 1e-12)
        let denseResult = try XCTUnwrap(document["dense"] as? [String: Any])
        XCTAssertEqual(denseResult["top1"] as? Double ?? -1, Double(dense.top1) / 3, accuracy: 1e-12)
        XCTAssertEqual(denseResult["top5"] as? Double ?? -1, Double(dense.top5) / 3, accuracy: 1e-12)
        XCTAssertEqual(document["agreement"] as? Double ?? -1, Double(agreeing) / 3, accuracy: 1e-12)

        // The JSON contract (DESIGN §1).
        for key in ["images", "top1", "top5", "images_per_second", "seconds", "kept_tokens", "failed", "dense", "agreement"] {
            XCTAssertNotNil(document[key], key)
        }
        for key in ["top1", "top5", "images_per_second"] { XCTAssertNotNil(denseResult[key], "dense.\(key)") }
        XCTAssertGreaterThan(document["images_per_second"] as? Double ?? 0, 0)
        XCTAssertGreaterThan(denseResult["images_per_second"] as? Double ?? 0, 0)
        XCTAssertGreaterThan(document["seconds"] as? Double ?? 0, 0)
        XCTAssertEqual(failedNames(document), [])
        let kept = try XCTUnwrap(document["kept_tokens"] as? [Any])
        XCTAssertEqual(kept.count, 12)
        XCTAssertEqual(kept.compactMap { $0 as? Int }, [137, 137, 137, 96, 96, 96, 67, 67, 67])
    }

    /// Folders named by class index, with a text file among the images: counted, listed with
    /// its reason, not fatal; `--strict` makes it the error.
    func testClassIndexLayoutListsTheNonImage() throws {
        let records = try EvalCLITests.records("by-index")
        let dense = Expected(records, model: "dense")
        XCTAssertEqual(dense.failed.count, 1)
        XCTAssertTrue(0 < dense.top1 && dense.top1 < dense.top5 && dense.top5 < dense.images)

        let result = try runIdleViT(["eval", EvalCLITests.model, "--images", EvalCLITests.byIndex, "--json", "--progress", "always"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let document = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(document["images"] as? Int, dense.images)
        XCTAssertEqual(document["top1_count"] as? Int, dense.top1)
        XCTAssertEqual(document["top5_count"] as? Int, dense.top5)
        XCTAssertEqual(failedNames(document), dense.failed.map { EvalCLITests.byIndex + "/" + $0 })
        let reason = (document["failed"] as? [[String: Any]])?.first?["reason"] as? String ?? ""
        XCTAssertTrue(reason.contains("not a JPEG or PNG"), reason)
        XCTAssertNil(document["dense"], "no dense section without --compare-dense")
        XCTAssertEqual((document["kept_tokens"] as? [Any])?.count, 0)
        // --progress always: done/total, images/s, ETA, running top-1 on stderr; stdout stays JSON.
        XCTAssertTrue(result.stderr.contains("\(dense.images + 1)/\(dense.images + 1) images"), result.stderr)
        for fragment in ["images/s", "ETA", "top-1"] { XCTAssertTrue(result.stderr.contains(fragment), result.stderr) }

        let strict = try runIdleViT(["eval", EvalCLITests.model, "--images", EvalCLITests.byIndex, "--strict"])
        XCTAssertEqual(strict.status, 2, strict.stderr)
        XCTAssertEqual(strict.stderr.split(separator: "\n").count, 1, strict.stderr)
        XCTAssertTrue(strict.stderr.contains("not-an-image.txt") && strict.stderr.contains("not a JPEG or PNG"), strict.stderr)
        XCTAssertEqual(strict.stdout, "")
    }

    /// `--labels-file`: labels from the CSV (other classes than the folder names say), a
    /// header, WordNet ids and indices, a quoted path; text output; a listed file that does not
    /// exist is a failure, fatal only with `--strict`.
    func testLabelsFileOverridesTheFolders() throws {
        let records = EvalCLITests.subset(try EvalCLITests.records("labels.csv"), limit: 5)
        let dense = Expected(records, model: "dense")
        XCTAssertTrue(0 < dense.top1 && dense.top1 < dense.top5 && dense.top5 < records.count)
        let folderLabels = EvalCLITests.subset(try EvalCLITests.records("imagenet"), limit: 5).map(\.label)
        XCTAssertNotEqual(records.map(\.label), folderLabels)

        let result = try runIdleViT(["eval", EvalCLITests.model, "--images", EvalCLITests.imagenet,
                                     "--labels-file", EvalCLITests.labels, "--limit", "5", "--progress", "never"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stderr, "")
        func percent(_ count: Int) -> String { String(format: "%.2f%%", 100 * Double(count) / Double(dense.images)) }
        let row = try XCTUnwrap(result.stdout.split(separator: "\n").first { $0.hasPrefix("dense") }, result.stdout)
        XCTAssertEqual(row.split(separator: " ").dropFirst().prefix(2).map(String.init), [percent(dense.top1), percent(dense.top5)], result.stdout)
        XCTAssertTrue(result.stdout.contains("5 images from"), result.stdout)
        XCTAssertTrue(result.stdout.contains("labels from the labels file"), result.stdout)

        let strict = try runIdleViT(["eval", EvalCLITests.model, "--images", EvalCLITests.imagenet,
                                     "--labels-file", EvalCLITests.labels, "--strict"])
        XCTAssertEqual(strict.status, 2, strict.stderr)
        XCTAssertTrue(strict.stderr.contains("n01440764/missing.jpg: cannot read the image"), strict.stderr)
        XCTAssertEqual(strict.stderr.split(separator: "\n").count, 1, strict.stderr)
    }

    /// A FIFO, a folder and a dangling link in a class folder, and a file beside the class
    /// folders: listed as failed, none opened for reading (a FIFO would block), the rest evaluated.
    func testUnusableEntriesAreListedNotFatal() throws {
        let root = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let records = try EvalCLITests.records("imagenet")
        let good = try XCTUnwrap(records.first)
        let wnid = String(good.file.split(separator: "/")[0])
        let classFolder = root.appendingPathComponent(wnid)
        try FileManager.default.createDirectory(at: classFolder.appendingPathComponent("nested"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: EvalCLITests.imagenet + "/" + good.file,
                                         toPath: classFolder.appendingPathComponent("b-good.png").path)
        XCTAssertEqual(mkfifo(classFolder.appendingPathComponent("a-pipe.jpg").path, 0o644), 0)
        try FileManager.default.createSymbolicLink(atPath: classFolder.appendingPathComponent("c-dangling.jpg").path,
                                                   withDestinationPath: "/nonexistent/file.jpg")
        try Data("x".utf8).write(to: root.appendingPathComponent("README"))
        try Data("hidden".utf8).write(to: classFolder.appendingPathComponent(".DS_Store"))

        let document = try json(["eval", EvalCLITests.model, "--images", root.path])
        XCTAssertEqual(document["images"] as? Int, 1)
        XCTAssertEqual(document["top1"] as? Double, good.rank["dense"] == 0 ? 1 : 0)
        let failed = try XCTUnwrap(document["failed"] as? [[String: String]])
        XCTAssertEqual(failed.map { $0["file"]! }, ["README", "\(wnid)/a-pipe.jpg", "\(wnid)/c-dangling.jpg", "\(wnid)/nested"].map { root.path + "/" + $0 })
        XCTAssertEqual(failed.map { $0["reason"]! }, ["outside any class folder, so it has no label", "a FIFO, not an image file",
                                                      "cannot read the file: No such file or directory", "a folder, not an image file"])
    }

    /// Folders that cannot be evaluated: exit 2, one line naming the folder (escaped).
    func testBadFoldersAreOneLineErrors() throws {
        let root = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        func folder(_ name: String, _ subfolders: [String], files: [String] = []) throws -> String {
            let url = root.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            for sub in subfolders { try FileManager.default.createDirectory(at: url.appendingPathComponent(sub), withIntermediateDirectories: true) }
            for file in files { try Data("x".utf8).write(to: url.appendingPathComponent(file)) }
            return url.path
        }
        let micro = TestPaths.fixture("micro/model.safetensors")
        let cases: [([String], String)] = [
            (["--images", try folder("unknown", ["n01440764", "cats"])], "cats: the folder name is neither an ImageNet-1k WordNet id"),
            (["--images", try folder("control", ["bad\u{1B}[31mname"])], "bad\\u{1b}[31mname: the folder name is neither"),
            (["--images", try folder("empty", [])], "empty: no class folders"),
            (["--images", try folder("hollow", ["3", "4"])], "hollow: the class folders hold no files"),
            (["--images", try folder("mixed", ["0", "n01440764"])], "class folders mix WordNet ids"),
            (["--images", try folder("range", ["1000"])], "1000: class index 1000 is outside the model's 1000 classes"),
            (["--images", try folder("unknown-wnid", ["n00000001"])], "n00000001: n00000001 is not one of the 1000 ImageNet-1k WordNet ids"),
            (["--images", root.appendingPathComponent("missing").path], "missing: cannot open the folder: No such file or directory"),
            (["--images", try folder("file-not-folder", [], files: ["x.csv"]) + "/x.csv"], "x.csv: not a folder"),
            (["--images", try folder("nolabels", [], files: ["a.jpg"])], "nolabels: no class folders"),
            (["--images", EvalCLITests.imagenet, "--labels-file", root.appendingPathComponent("none.csv").path], "none.csv: cannot read the labels file"),
            (["--images", EvalCLITests.imagenet, "--labels-file", EvalCLITests.imagenet], "imagenet: cannot read the labels file: not a regular file (a directory)"),
            (["--images", EvalCLITests.imagenet, "--compare-dense"], "--compare-dense compares an IdleViT schedule"),
        ]
        for (arguments, fragment) in cases {
            let result = try runIdleViT(["eval", EvalCLITests.model] + arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.stderr)")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains(fragment), "'\(fragment)' not in: \(result.stderr)")
            XCTAssertEqual(result.stdout, "")
        }
        // WordNet folders name ImageNet-1k classes: a 10-class model cannot use them.
        let small = try runIdleViT(["eval", micro, "--images", EvalCLITests.imagenet])
        XCTAssertEqual(small.status, 2, small.stderr)
        XCTAssertTrue(small.stderr.contains("WordNet ids name ImageNet-1k's 1000 classes, but the model has 10"), small.stderr)
        // Flags checked before any work (validate()).
        for flags in [["--batch", "0"], ["--limit", "0"], ["--threads", "-1"], ["--progress", "sometimes"], ["--crop-pct", "0"],
                      ["--mean", "0.5,0.5"], ["--std", "0,1,1"], ["--std", "nan"]] {
            let result = try runIdleViT(["eval", EvalCLITests.model, "--images", EvalCLITests.imagenet] + flags)
            XCTAssertEqual(result.status, 2, "\(flags): \(result.stderr)")
        }
        // A batch over the memory budget is refused before anything is decoded; the dense
        // original of --compare-dense counts too (tiny12 at batch 4: ~11.7 MiB alone, ~18.8 MiB with it).
        let over = try runIdleViT(["eval", EvalCLITests.model, "--images", EvalCLITests.imagenet, "--max-memory", "1M"])
        XCTAssertEqual(over.status, 2, over.stderr)
        XCTAssertEqual(over.stderr.split(separator: "\n").count, 1, over.stderr)
        XCTAssertTrue(over.stderr.contains("over the budget of 1 MiB (raise it with --max-memory"), over.stderr)
        let alone = ["eval", EvalCLITests.model, "--images", EvalCLITests.imagenet, "--keep-ratio", "0.7", "--batch", "4",
                     "--limit", "4", "--max-memory", "15M"]
        XCTAssertEqual(try runIdleViT(alone).status, 0)
        let both = try runIdleViT(alone + ["--compare-dense"])
        XCTAssertEqual(both.status, 2, both.stderr)
        XCTAssertTrue(both.stderr.contains("over the budget of 15 MiB"), both.stderr)
        // Every file unusable: nothing to report accuracy on.
        let broken = try folder("broken", ["5"], files: [])
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: broken + "/5/a.jpg"))
        let none = try runIdleViT(["eval", EvalCLITests.model, "--images", broken])
        XCTAssertEqual(none.status, 2, none.stderr)
        XCTAssertTrue(none.stderr.contains("none of the 1 files could be evaluated"), none.stderr)
    }
}
