import Foundation
import XCTest
import Evaluation
import Images

/// The pieces of `idlevit eval` in process: the WordNet id list, label parsing, the labels CSV,
/// ranking, `--limit`, and the streamed batches (order, failures, batch sizes).
final class EvaluationTests: XCTestCase {
    func testWordNetIdsAreTheSortedImageNetList() {
        let ids = ImageNetSynsets.ids
        XCTAssertEqual(ids.count, 1000)
        XCTAssertEqual(Set(ids).count, 1000)
        XCTAssertEqual(ids, ids.sorted(), "class index = position in the sorted list")
        // Known classes (torchvision / timm class indices, names from the bundled label list).
        let known: [(String, Int, String)] = [
            ("n01440764", 0, "tench"), ("n01443537", 1, "goldfish"), ("n02099601", 207, "golden retriever"),
            ("n02123045", 281, "tabby"), ("n04589890", 904, "window screen"), ("n15075141", 999, "toilet tissue"),
        ]
        for (id, index, name) in known {
            XCTAssertEqual(ids[index], id)
            XCTAssertTrue(ImageNetLabels.names[index].hasPrefix(name), ImageNetLabels.names[index])
            XCTAssertEqual(try? ClassLabel(id)?.classIndex(classes: 1000).get(), index)
        }
    }

    func testClassLabels() {
        XCTAssertEqual(ClassLabel("n01440764"), .wordNet("n01440764"))
        XCTAssertEqual(ClassLabel("0"), .index(0))
        XCTAssertEqual(ClassLabel("007"), .index(7))
        for text in ["", "cat", "-1", "1.5", "n0144076", "n014407640", "N01440764", " 3", "1234567890", "٣"] {
            XCTAssertNil(ClassLabel(text), text)
        }
        XCTAssertEqual(ClassLabel("9")?.classIndex(classes: 10), .success(9))
        XCTAssertEqual(ClassLabel("10")?.classIndex(classes: 10), .failure(.outOfRange(10, classes: 10)))
        XCTAssertEqual(ClassLabel("n01440764")?.classIndex(classes: 10), .failure(.wordNetNeedsImageNet(classes: 10)))
        XCTAssertEqual(ClassLabel("n00000001")?.classIndex(classes: 1000), .failure(.unknownWordNetID("n00000001")))
    }

    func testRankingBreaksTiesToTheLowerIndexAndSinksNaN() {
        func rank(_ label: Int, _ row: [Float]) -> Int { row.withUnsafeBufferPointer { Ranking.rank(of: label, in: $0) } }
        func argmax(_ row: [Float]) -> Int { row.withUnsafeBufferPointer { Ranking.argmax($0) } }
        XCTAssertEqual(rank(2, [0, 1, 5, 3]), 0)
        XCTAssertEqual(rank(0, [0, 1, 5, 3]), 3)
        XCTAssertEqual(rank(1, [2, 2, 2]), 1, "a tie goes to the lower class index")
        XCTAssertEqual(rank(0, [Float.nan, 1, 2]), 3, "a NaN label logit is never correct")
        XCTAssertEqual(argmax([1, 3, 3, 2]), 1)
        XCTAssertEqual(argmax([Float.nan, 1, 4]), 2)
        var tally = AccuracyTally()
        for r in [0, 1, 4, 5, 900] { tally.add(rank: r) }
        XCTAssertEqual([tally.images, tally.top1, tally.top5], [5, 1, 3])
    }

    func testBatchesAreBalanced() {
        let cases: [(entries: Int, maximum: Int, size: Int)] = [(100, 32, 25), (2000, 32, 32), (5, 32, 5), (33, 32, 17), (64, 32, 32), (1, 8, 1), (0, 8, 1)]
        for (entries, maximum, size) in cases {
            XCTAssertEqual(ImageBatchStream.balancedBatch(entries: entries, maximum: maximum), size, "\(entries) at most \(maximum)")
        }
    }

    func testLimitSpreadsOverTheSortedList() {
        let files = (0..<10).map { (i: Int) in LabelledFile(path: "f\(i)", label: i) }.reversed()
        let list = LabelledImages(sorting: Array(files), layout: .indexFolders)
        XCTAssertEqual(list.files.map(\.path), (0..<10).map { "f\($0)" })
        XCTAssertEqual(list.limited(to: 4).files.map(\.path), ["f0", "f2", "f5", "f7"])
        XCTAssertEqual(list.limited(to: 10).files.count, 10)
        XCTAssertEqual(list.limited(to: 99).files.count, 10)
    }

    func testLabelsCSVRecords() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let csv = folder.appendingPathComponent("labels.csv")
        let text = "\u{FEFF}path,label\r\nb.jpg,3\r\n\r\n\"a, \"\"quoted\"\".png\",n01443537\n  c.png ,  7  \nsub/d.jpg,0"
        try Data(text.utf8).write(to: csv)
        let list = try LabelsFile.read(csv.path, imageFolder: folder.path, classes: 1000)
        XCTAssertEqual(list.layout, .labelsFile)
        let base = folder.path + "/"
        XCTAssertEqual(list.files, [LabelledFile(path: base + "a, \"quoted\".png", label: 1), LabelledFile(path: base + "b.jpg", label: 3),
                                    LabelledFile(path: base + "c.png", label: 7), LabelledFile(path: base + "sub/d.jpg", label: 0)])

        let bad: [(String, String)] = [
            ("a.jpg,3,4\n", "line 1: expected 2 fields"),
            ("path,label\na.jpg,cat\n", "line 2: label 'cat' is neither"),
            ("file,class\na.jpg,3\n", "(a header line must be 'path,label')"),
            ("a.jpg,1000\n", "line 1: class index 1000 is outside the model's 1000 classes"),
            ("a.jpg,n99999999\n", "not one of the 1000 ImageNet-1k WordNet ids"),
            ("/etc/passwd,1\n", "absolute"),
            ("x/../../secret.jpg,1\n", "'..' leaves the image folder"),
            ("a.jpg,1\nb.jpg,2\na.jpg,3\n", "line 3: 'a.jpg' is listed twice (lines 1 and 3)"),
            ("\"a.jpg,1\n", "line 1: a quoted field is not closed"),
            ("a\"b.jpg,1\n", "a quote (\") inside an unquoted field"),
            ("\"a.jpg\"x,1\n", "text after the closing quote"),
            ("path,label\n\n", "lists no images"),
            ("a\u{1}\u{202E}.jpg,1\na\u{1}\u{202E}.jpg,2\n", "'a\\u{1}\\u{202e}.jpg' is listed twice"),
        ]
        for (content, fragment) in bad {
            try Data(content.utf8).write(to: csv)
            XCTAssertThrowsError(try LabelsFile.read(csv.path, imageFolder: folder.path, classes: 1000), content) { error in
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix(csv.path), message)
                XCTAssertTrue(message.contains(fragment), "'\(fragment)' not in: \(message)")
                XCTAssertEqual(message.split(separator: "\n").count, 1, message)
            }
        }
        try Data([0x61, 0xFF, 0x2C, 0x31]).write(to: csv)
        XCTAssertThrowsError(try LabelsFile.read(csv.path, imageFolder: folder.path, classes: 1000)) {
            XCTAssertTrue("\($0)".contains("not valid UTF-8"), "\($0)")
        }
    }

    /// Batches come out in file order with exactly `batchSize` images (failures skipped, not
    /// left as holes), failures listed in order, whatever the number of workers and the window.
    func testStreamKeepsOrderAndFullBatches() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let png = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("images/variants/rgb.png")))
        let jpeg = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("images/variants/ycbcr444.jpg")))
        var files: [LabelledFile] = []
        var broken: Set<Int> = [2, 3, 7, 12]
        for i in 0..<14 {
            let path = folder.appendingPathComponent(String(format: "%02d.img", i)).path
            let bytes = broken.contains(i) ? Data("not an image \(i)".utf8) : (i % 2 == 0 ? png : jpeg)
            try bytes.write(to: URL(fileURLWithPath: path))
            files.append(LabelledFile(path: path, label: i))
        }
        files.append(LabelledFile(path: folder.appendingPathComponent("99.fifo").path, label: 99, problem: "a FIFO, not an image file"))
        broken.insert(14)
        let transform = EvalTransform(imageSize: 8, cropPercent: 0.875)
        let expected = try files.filter { $0.problem == nil && !broken.contains($0.label!) }.map {
            transform.pixelValues(try ImageDecoder.decode(path: $0.path).image)
        }
        // 15 entries: at most 3 a batch is 5 batches of 3; at most 2 is 8 of 2; at most 4 is 4 of 4.
        for (maximum, batchSize, workers, window, sizes) in [(3, 3, 1, 1, [3, 3, 3, 1]), (3, 3, 3, 2, [3, 3, 3, 1]),
                                                            (2, 2, 4, 16, [2, 2, 2, 2, 2, 0]), (4, 4, 2, 3, [4, 4, 2])] {
            let stream = ImageBatchStream(files: files, maximumBatch: maximum, workers: workers,
                                          preprocessor: ImagePreprocessor(transform: transform), window: window)
            var labels: [Int] = [], failed: [String] = [], batches: [Int] = [], pixels: [[Float]] = []
            var done = 0
            while let batch = stream.next() {
                batches.append(batch.files.count)
                labels += batch.files.map { $0.label! }
                failed += batch.failed.map { ($0.path as NSString).lastPathComponent }
                XCTAssertGreaterThan(batch.entriesDone, done)
                done = batch.entriesDone
                if let tensor = batch.pixels {
                    XCTAssertEqual(tensor.shape, [batchSize, 3, 8, 8], "every batch tensor has the one balanced size")
                    for b in 0..<batch.files.count { pixels.append(Array(tensor.buffer[(b * 192)..<((b + 1) * 192)])) }
                    XCTAssertTrue(tensor.buffer[(batch.files.count * 192)...].allSatisfy { $0 == 0 }, "padding rows are zeros")
                }
            }
            XCTAssertEqual(stream.batchSize, batchSize)
            let context = "batch \(maximum), workers \(workers), window \(window)"
            XCTAssertEqual(labels, [0, 1, 4, 5, 6, 8, 9, 10, 11, 13], context)
            XCTAssertEqual(batches, sizes, context + ": full batches; trailing failures come in a batch without images")
            XCTAssertEqual(failed, ["02.img", "03.img", "07.img", "12.img", "99.fifo"], context)
            XCTAssertEqual(done, 15)
            XCTAssertEqual(pixels, expected, context)
        }
    }
}
