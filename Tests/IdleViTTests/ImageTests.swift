import Foundation
import XCTest
import Images

/// Decoding and DeiT preprocessing against PIL / torchvision on the fixture photographs
/// (Fixtures/images, references from make_pixel_values.py).
///
/// Bound: the tensors must agree within one uint8 step of the pixel value, i.e. per element
/// |ours - ref| <= (1/255) / std_c for channel c, at most (1/255) / 0.224 = 0.01751 (plus 1e-6 for
/// Float32 rounding). Because decode and resize are meant to be bit-exact, the tests also report the
/// actual differences, and require the 8-bit crops to match exactly.
final class ImageTests: XCTestCase {
    static let std: [Float] = [0.229, 0.224, 0.225]
    static let mean: [Double] = [0.485, 0.456, 0.406]

    func testVariantsDecodeLikePILConvertRGB() throws {
        let references = try ReferenceTensors(fixture: "images/pixel_values.safetensors")
        let folder = TestPaths.fixture("images/variants")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { !$0.hasPrefix(".") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 14)
        for file in files {
            let decoded = try ImageDecoder.decode(path: folder + "/" + file)
            let stem = (file as NSString).deletingPathExtension
            let reference = try references.bytes("variants/\(stem).rgb")
            XCTAssertEqual([decoded.image.height, decoded.image.width, 3], reference.shape, file)
            let differences = zip(decoded.image.pixels, reference.values).map { abs(Int($0) - Int($1)) }
            XCTAssertEqual(differences.max(), 0, "\(file) (\(decoded.storage)) differs from PIL's convert('RGB')")
        }
    }

    func testStorageKindsAreRecognised() throws {
        let folder = TestPaths.fixture("images") + "/"
        XCTAssertEqual(try ImageDecoder.decode(path: folder + "astronaut_progressive.jpg").storage, "JPEG progressive, RGB")
        XCTAssertEqual(try ImageDecoder.decode(path: folder + "camera_gray.jpg").storage, "JPEG baseline, grayscale")
        XCTAssertEqual(try ImageDecoder.decode(path: folder + "variants/cmyk.jpg").storage, "JPEG baseline, CMYK (Adobe)")
        XCTAssertEqual(try ImageDecoder.decode(path: folder + "variants/palette4.png").storage, "PNG 4-bit palette")
        XCTAssertEqual(try ImageDecoder.decode(path: folder + "variants/interlaced.png").storage, "PNG 8-bit RGB, interlaced")
        let gray16 = try ImageDecoder.decode(path: folder + "variants/gray16.png")
        XCTAssertEqual(gray16.storage, "PNG 16-bit gray")
        XCTAssertEqual(gray16.notes.count, 1, "clipping 16-bit gray at 255 (as PIL does) is reported")
        XCTAssertTrue(try ImageDecoder.decode(path: folder + "variants/rgba16.png").notes.isEmpty)
    }

    func testBicubicResizeMatchesPillowExactly() throws {
        let references = try ReferenceTensors(fixture: "images/pixel_values.safetensors")
        let small = try ImageDecoder.decode(path: TestPaths.fixture("images/variants/rgb.png")).image
        let up = BicubicResample.resize(small, width: 150, height: 100)
        XCTAssertEqual(up.pixels, try references.bytes("resize.up").values, "upscaling 96x64 -> 150x100")
        let chelsea = try ImageDecoder.decode(path: TestPaths.fixture("images/chelsea.png")).image
        let down = BicubicResample.resize(chelsea, width: 123, height: 82)
        XCTAssertEqual(down.pixels, try references.bytes("resize.down").values, "downscaling 451x300 -> 123x82")
        XCTAssertEqual(BicubicResample.resize(small, width: small.width, height: small.height), small)
        // A window of a resize (what EvalTransform computes) is the resize cropped, byte for byte,
        // also when one axis keeps its size.
        XCTAssertEqual(BicubicResample.resize(chelsea, width: 123, height: 82, columns: 10..<70, rows: 5..<80),
                       down.cropped(x: 10, y: 5, width: 60, height: 75))
        XCTAssertEqual(BicubicResample.resize(small, width: 150, height: 100, columns: 0..<150, rows: 99..<100),
                       up.cropped(x: 0, y: 99, width: 150, height: 1))
        XCTAssertEqual(BicubicResample.resize(chelsea, width: 451, height: 82, columns: 3..<400, rows: 0..<40),
                       BicubicResample.resize(chelsea, width: 451, height: 82).cropped(x: 3, y: 0, width: 397, height: 40))
    }

    func testPhotoCropsAndPixelValuesMatchTimm() throws {
        let references = try ReferenceTensors(fixture: "images/pixel_values.safetensors")
        let transform = EvalTransform(imageSize: 224)
        XCTAssertEqual(references.photos.count, 4)
        var worstPixel = 0
        var worstTensor: Float = 0
        for photo in references.photos {
            let image = try ImageDecoder.decode(path: TestPaths.fixture("images/" + photo)).image
            let crop = transform.crop(image)
            let reference = try references.bytes((photo as NSString).deletingPathExtension + ".crop")
            let pixelDifference = zip(crop.pixels, reference.values).map { abs(Int($0) - Int($1)) }.max() ?? 0
            worstPixel = max(worstPixel, pixelDifference)
            XCTAssertEqual(pixelDifference, 0, "\(photo): the 224x224 crop differs from PIL's")
            // ToTensor + Normalize of the reference crop, as torch computes it in Float32.
            let ours = transform.pixelValues(image)
            for c in 0..<3 {
                let m = Float(ImageTests.mean[c]), s = ImageTests.std[c]
                for i in 0..<(224 * 224) {
                    let expected = (Float(reference.values[3 * i + c]) / 255 - m) / s
                    let difference = abs(ours[c * 224 * 224 + i] - expected)
                    worstTensor = max(worstTensor, difference)
                    XCTAssertLessThanOrEqual(difference, 1 / 255 / s + 1e-6, "\(photo) channel \(c)")
                }
            }
        }
        // The full torchvision transform of chelsea.png, stored as Float32.
        let stored = try references.floats("pixel_values")
        XCTAssertEqual(stored.shape, [1, 3, 224, 224])
        let chelsea = try ImageDecoder.decode(path: TestPaths.fixture("images/chelsea.png")).image
        let ours = transform.pixelValues(chelsea)
        let tensorDifference = zip(ours, stored.values).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(tensorDifference, 1 / 255 / 0.224 + 1e-6)
        print("preprocessing parity: max |crop - PIL crop| = \(worstPixel) (uint8), max |pixel_values - timm| = \(max(worstTensor, tensorDifference))")
    }

    func testResizeAndCropFollowTorchvisionRules() {
        let deit = EvalTransform(imageSize: 224)
        XCTAssertEqual(deit.resizeSize, 256)
        XCTAssertTrue(deit.resizedSize(width: 451, height: 300) == (384, 256))
        XCTAssertTrue(deit.resizedSize(width: 300, height: 451) == (256, 384))
        XCTAssertTrue(deit.resizedSize(width: 640, height: 427) == (383, 256))  // int(383.7)
        XCTAssertEqual(EvalTransform(imageSize: 224, cropPercent: 0.9).resizeSize, 248)
        XCTAssertEqual(EvalTransform(imageSize: 384).resizeSize, 438)
        XCTAssertEqual(EvalTransform(imageSize: 384, cropPercent: 1).resizeSize, 384)
        // Python's round(): halves go to the even neighbour.
        XCTAssertEqual(EvalTransform.cropOffset(size: 341, crop: 224), 58)
        XCTAssertEqual(EvalTransform.cropOffset(size: 343, crop: 224), 60)
        XCTAssertEqual(EvalTransform.cropOffset(size: 384, crop: 224), 80)
        // Images smaller than the resize target are upscaled, then cropped.
        let tiny = RGBImage(width: 40, height: 30, fill: RGB(10, 200, 30))
        let crop = deit.crop(tiny)
        XCTAssertEqual([crop.width, crop.height], [224, 224])
        XCTAssertEqual(crop[100, 100], RGB(10, 200, 30), "a flat image stays flat through the resample")
    }

    func testPNGEncoderRoundTrips() throws {
        var pixels: [UInt8] = []
        for i in 0..<(37 * 23 * 3) { pixels.append(UInt8((i * 7919) % 251)) }
        let image = RGBImage(width: 37, height: 23, pixels: pixels)
        let png = try PNGEncoder.encode(image)
        let decoded = try ImageDecoder.decode(bytes: png, name: "memory.png")
        XCTAssertEqual(decoded.image, image)
        XCTAssertEqual(decoded.storage, "PNG 8-bit RGB")
    }

    func testDecoderErrorsNameTheFileAndTheProblem() throws {
        let jpeg = try [UInt8](Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("images/rocket.jpg"))))
        let png = try [UInt8](Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("images/chelsea.png"))))
        var flipped = png
        flipped[png.count / 2] ^= 0x55
        let cases: [(bytes: [UInt8], name: String, expect: String)] = [
            (Array(jpeg.prefix(jpeg.count / 2)), "half.jpg", "truncated"),
            (Array(jpeg.prefix(2)) + [0xFF, 0xC0, 0x00, 0x03] + [UInt8](repeating: 0x12, count: 300), "junk.jpg", "corrupt"),
            (Array(png.prefix(png.count / 2)), "half.png", "truncated"),
            (Array(png.prefix(20)), "header.png", "truncated"),
            (flipped, "flipped.png", "CRC"),
            ([], "empty.jpg", "empty"),
            (Array("GIF89a....".utf8), "anim.gif", "GIF"),
        ]
        for item in cases {
            XCTAssertThrowsError(try ImageDecoder.decode(bytes: item.bytes, name: item.name), item.name) { error in
                let text = "\(error)"
                XCTAssertTrue(text.hasPrefix(item.name + ": "), text)
                XCTAssertTrue(text.contains(item.expect), text)
            }
        }
    }

    func testBundledLabelsAreTheImageNetList() throws {
        let text = try String(contentsOfFile: TestPaths.fixture("images/imagenet-1k-labels.txt"), encoding: .utf8)
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertEqual(ImageNetLabels.names.count, 1000)
        XCTAssertEqual(ImageNetLabels.names, lines)
        XCTAssertEqual(ImageNetLabels.names[0], "tench, Tinca tinca")
        XCTAssertEqual(ImageNetLabels.names[281], "tabby, tabby cat")
        XCTAssertEqual(ImageNetLabels.names[999], "toilet tissue, toilet paper, bathroom tissue")
    }
}
