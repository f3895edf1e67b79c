import Foundation
import XCTest
import Images

/// `idlevit run --image` and `idlevit visualize` end to end, on the fixture photographs and the
/// tiny12 timm model (references: Fixtures/images/reference_logits.safetensors).
final class ImageCLITests: XCTestCase {
    static let model = TestPaths.fixture("tiny12/model.safetensors")

    private func json(_ result: CommandResult, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], file: file, line: line)
    }

    private func logits(_ document: [String: Any]) -> [[Double]] {
        ((document["images"] as? [[String: Any]]) ?? []).map { ($0["logits"] as? [Double]) ?? [] }
    }

    func testRunImageLogitsMatchTimm() throws {
        let references = try ReferenceTensors(fixture: "images/reference_logits.safetensors")
        let photos = references.photos.map { TestPaths.fixture("images/" + $0) }
        // --batch 3: four photos stream as two balanced batches of 2 and come out in order.
        for (key, flags) in [("logits", ["--batch", "3"]), ("logits_timm_cfg", ["--crop-pct", "0.9"])] {
            let expected = try references.floats(key)
            let document = try json(try runIdleViT(["run", ImageCLITests.model, "--json"] + flags + ["--image"] + photos))
            let ours = logits(document)
            XCTAssertEqual(ours.count, photos.count)
            var worst = 0.0
            for (b, row) in ours.enumerated() {
                XCTAssertEqual(row.count, 1000)
                for (c, value) in row.enumerated() { worst = max(worst, abs(value - Double(expected.values[b * 1000 + c]))) }
            }
            XCTAssertLessThanOrEqual(worst, 1e-3, "\(key): logits through run --image vs timm")
            print("run --image \(flags.joined(separator: " ")) vs timm (\(key)): max |logit diff| = \(worst)")
        }
    }

    func testImageAndInputGiveTheSameLogits() throws {
        let viaInput = try json(try runIdleViT(["run", ImageCLITests.model, "--json", "--input", TestPaths.fixture("images/pixel_values.safetensors")]))
        let viaImage = try json(try runIdleViT(["run", ImageCLITests.model, "--json", "--image", TestPaths.fixture("images/chelsea.png")]))
        let a = logits(viaInput)[0], b = logits(viaImage)[0]
        XCTAssertEqual(a.count, 1000)
        XCTAssertLessThanOrEqual(zip(a, b).map { abs($0 - $1) }.max() ?? 1, 1e-6)
    }

    func testFolderRunsSortedAndPrintsImageNetNames() throws {
        let document = try json(try runIdleViT(["run", ImageCLITests.model, "--json", "--keep-ratio", "0.7", "--image", TestPaths.fixture("images")]))
        let images = try XCTUnwrap(document["images"] as? [[String: Any]])
        XCTAssertEqual(images.compactMap { ($0["file"] as? String).map { ($0 as NSString).lastPathComponent } },
                       ["astronaut_progressive.jpg", "camera_gray.jpg", "chelsea.png", "rocket.jpg"])
        for image in images {
            let top = try XCTUnwrap(image["top"] as? [[String: Any]])
            XCTAssertEqual(top.count, 5)
            for entry in top {
                let index = try XCTUnwrap(entry["class"] as? Int)
                XCTAssertEqual(entry["label"] as? String, ImageNetLabels.names[index])
            }
        }
        let text = try runIdleViT(["run", ImageCLITests.model, "--image", TestPaths.fixture("images/chelsea.png"), "--top", "3"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("chelsea.png"), text.stdout)
        XCTAssertTrue(text.stdout.contains("p=0."), text.stdout)

        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let labels = folder.appendingPathComponent("labels.txt")
        try (0..<1000).map { "class-\($0)" }.joined(separator: "\n").write(to: labels, atomically: true, encoding: .utf8)
        let custom = try json(try runIdleViT(["run", ImageCLITests.model, "--json", "--labels", labels.path,
                                               "--image", TestPaths.fixture("images/rocket.jpg")]))
        let first = try XCTUnwrap(((custom["images"] as? [[String: Any]])?.first?["top"] as? [[String: Any]])?.first)
        XCTAssertEqual(first["label"] as? String, "class-\(first["class"] as? Int ?? -1)")
    }

    func testBadImagesExitTwoWithTheFileNamed() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let jpeg = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("images/rocket.jpg")))
        let png = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("images/chelsea.png")))
        var flipped = png
        flipped[png.count / 2] ^= 0x55
        let files: [(String, Data)] = [
            ("truncated.jpg", jpeg.prefix(jpeg.count / 2)),
            ("corrupt.jpg", jpeg.prefix(2) + Data([0xFF, 0xC0, 0x00, 0x03]) + Data(repeating: 0x12, count: 300)),
            ("truncated.png", png.prefix(png.count / 2)),
            ("corrupt.png", flipped),
            ("empty.png", Data()),
            ("notes.jpg", Data("not an image".utf8)),
        ]
        for (name, bytes) in files {
            let path = folder.appendingPathComponent(name).path
            try bytes.write(to: URL(fileURLWithPath: path))
            for command in [["run", ImageCLITests.model, "--image", path],
                            ["visualize", ImageCLITests.model, "--keep-ratio", "0.7", "-o", folder.appendingPathComponent("out.png").path, "--image", path]] {
                let result = try runIdleViT(command)
                XCTAssertEqual(result.status, 2, "\(command[0]) \(name): \(result.stderr)")
                let lines = result.stderr.split(separator: "\n")
                XCTAssertEqual(lines.count, 1, result.stderr)
                XCTAssertTrue(result.stderr.contains(path), result.stderr)
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("out.png").path))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".tmp-") }
        XCTAssertEqual(leftovers, [], "no partial output left behind")

        let usage: [[String]] = [
            ["run", ImageCLITests.model],
            ["run", ImageCLITests.model, "--input", TestPaths.fixture("images/pixel_values.safetensors"), "--image", TestPaths.fixture("images/chelsea.png")],
            ["run", ImageCLITests.model, "--image", folder.appendingPathComponent("missing.jpg").path],
            ["run", ImageCLITests.model, "--crop-pct", "1.5", "--image", TestPaths.fixture("images/chelsea.png")],
            ["visualize", ImageCLITests.model, "-o", folder.appendingPathComponent("dense.png").path, "--image", TestPaths.fixture("images/chelsea.png")],
        ]
        for command in usage {
            let result = try runIdleViT(command)
            XCTAssertEqual(result.status, 2, "\(command): \(result.stderr)")
            XCTAssertFalse(result.stderr.isEmpty)
        }
        let note = try runIdleViT(["run", ImageCLITests.model, "--image", TestPaths.fixture("images/variants/gray16.png")])
        XCTAssertEqual(note.status, 0, note.stderr)
        XCTAssertTrue(note.stderr.contains("clipped"), note.stderr)
    }

    func testVisualizePanelsFollowTheSelection() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("selection.png").path
        let photo = TestPaths.fixture("images/chelsea.png")
        let document = try json(try runIdleViT(["visualize", ImageCLITests.model, "--image", photo, "--keep-ratio", "0.7", "-o", output, "--json"]))
        let layers = try XCTUnwrap(document["layers"] as? [[String: Any]])
        XCTAssertEqual(layers.map { $0["layer"] as? Int }, Array(3...11))
        XCTAssertEqual(layers.map { $0["kept"] as? Int }, [137, 137, 137, 96, 96, 96, 67, 67, 67])

        let picture = try ImageDecoder.decode(path: output)
        XCTAssertEqual(picture.storage, "PNG 8-bit RGB")
        let image = picture.image
        XCTAssertEqual([image.width, image.height], [document["width"] as? Int, document["height"] as? Int])
        // The same layout the command used: 10 panels of 224 px in 5 columns.
        let crop = EvalTransform(imageSize: 224).crop(try ImageDecoder.decode(path: photo).image)
        let panels = [SelectionPicture.Panel(title: "", selectedPatches: nil)]
            + layers.map { _ in SelectionPicture.Panel(title: "", selectedPatches: []) }
        let layout = SelectionPicture(crop: crop, patchSize: 16, header: "", panels: panels)
        XCTAssertEqual([layout.width, layout.height], [image.width, image.height])

        let input = layout.placement(of: 0)
        XCTAssertEqual(image.cropped(x: input.x, y: input.y, width: 224, height: 224), crop, "the first panel is the centre crop")
        let inset = SelectionPicture.outlineWidth
        for (index, layer) in layers.enumerated() {
            let selected = Set(try XCTUnwrap(layer["selected_patches"] as? [Int]))
            XCTAssertEqual(selected.count, layer["kept"] as? Int)
            XCTAssertEqual(layer["selected_tokens"] as? [Int], [0] + selected.sorted().map { $0 + 1 })
            let place = layout.placement(of: index + 1)
            for patch in 0..<196 {
                let (row, column) = (patch / 14, patch % 14)
                var same = 0, dimmed = 0, total = 0
                for y in (row * 16 + inset)..<(row * 16 + 16 - inset) {
                    for x in (column * 16 + inset)..<(column * 16 + 16 - inset) {
                        let original = crop[x, y], shown = image[place.x + x, place.y + y]
                        total += 1
                        if shown == original { same += 1 }
                        let dim = { (v: UInt8) in UInt8((Int(v) * SelectionPicture.dimming + 128) >> 8) }
                        if shown == RGB(dim(original.r), dim(original.g), dim(original.b)) { dimmed += 1 }
                    }
                }
                if selected.contains(patch) {
                    XCTAssertEqual(same, total, "layer \(layer["layer"]!) patch \(patch) is selected: shown as in the crop")
                } else {
                    XCTAssertEqual(dimmed, total, "layer \(layer["layer"]!) patch \(patch) is idle: dimmed")
                    XCTAssertLessThan(same, total, "an idle patch must look different from the crop")
                }
            }
        }
        let text = try runIdleViT(["visualize", ImageCLITests.model, "--image", photo, "--keep-ratio", "0.5", "-o", output])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("blocks.11"), text.stdout)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["selection.png"])
    }
}
