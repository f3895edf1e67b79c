import ArgumentParser
import Foundation
import IR
import Images

/// `--image` and its preprocessing options, shared by `run` and `visualize`.
struct ImageOptions: ParsableArguments {
    @Option(name: .customLong("image"), parsing: .upToNextOption,
            help: ArgumentHelp("JPEG or PNG files, or folders (every .jpg/.jpeg/.png inside, sorted by name).",
                               discussion: "Put MODEL before --image, which takes every following argument up to the next option.",
                               valueName: "file"))
    var images: [String] = []

    @OptionGroup var preprocessing: PreprocessOptions

    /// The files named by `--image`, folders expanded.
    func imagePaths() throws -> [String] {
        var paths: [String] = []
        for path in images {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue else {
                paths.append(path)  // a missing file is reported by the decoder, by name
                continue
            }
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
                throw CLIError.invalid("\(path): cannot list the folder: \(error.localizedDescription)")
            }
            let found = names.filter { name in
                !name.hasPrefix(".") && ["jpg", "jpeg", "png"].contains((name as NSString).pathExtension.lowercased())
            }.sorted()
            guard !found.isEmpty else { throw CLIError.invalid("\(path): the folder holds no .jpg, .jpeg or .png files") }
            paths += found.map { (path as NSString).appendingPathComponent($0) }
        }
        return paths
    }

    func transform(for architecture: DeiTArchitecture) throws -> EvalTransform {
        try preprocessing.transform(for: architecture)
    }

    /// Decodes and preprocesses `paths` into one `pixel_values` batch [B, 3, S, S].
    func load(_ paths: [String], for architecture: DeiTArchitecture) throws -> ImageBatch {
        let transform = try transform(for: architecture)
        let size = architecture.imageSize
        var values: [Float] = []
        values.reserveCapacity(paths.count * 3 * size * size)
        var crops: [RGBImage] = []
        for path in paths {
            let decoded: DecodedImage
            do { decoded = try ImageDecoder.decode(path: path) } catch { throw CLIError.invalid(error.description) }
            for note in decoded.notes { writeNote("\(path): \(note)") }
            let crop = transform.crop(decoded.image)
            transform.normalise(crop, into: &values)
            crops.append(crop)
        }
        return ImageBatch(files: paths, crops: crops,
                          pixels: FloatTensor(shape: [paths.count, 3, size, size], values: values))
    }
}

/// How images become the model's input: DeiT's evaluation transform, with its numbers as flags.
struct PreprocessOptions: ParsableArguments {
    @Option(name: .customLong("crop-pct"),
            help: "Centre-crop fraction: the shorter side is resized to floor(S / crop-pct) before the S x S crop (S = the model's image size). DeiT evaluates with 0.875 (256 -> 224); timm's pretrained configs for DeiT say 0.9 at 224 px and 1.0 at 384 px.")
    var cropPercent: Double = EvalTransform.deitCropPercent

    @Option(help: ArgumentHelp("Per-channel mean subtracted after scaling to [0, 1]: R,G,B or one value for all (default: ImageNet's 0.485,0.456,0.406).", valueName: "m"))
    var mean: ChannelValues?

    @Option(help: ArgumentHelp("Per-channel standard deviation divided by: R,G,B or one value for all (default: ImageNet's 0.229,0.224,0.225).", valueName: "s"))
    var std: ChannelValues?

    func validate() throws {
        guard cropPercent > 0, cropPercent <= 1, cropPercent.isFinite else {
            throw ValidationError("--crop-pct \(cropPercent) is outside (0, 1]")
        }
        if let std, !std.values.allSatisfy({ $0 > 0 }) {
            throw ValidationError("--std values must be positive")
        }
    }

    func transform(for architecture: DeiTArchitecture) throws -> EvalTransform {
        try validate()
        guard architecture.inChannels == 3 else {
            throw CLIError.invalid("the model takes \(architecture.inChannels) input channels; images give 3 (RGB)")
        }
        var transform = EvalTransform(imageSize: architecture.imageSize, cropPercent: cropPercent)
        if let mean { transform.mean = mean.values }
        if let std { transform.std = std.values }
        return transform
    }
}

/// Three per-channel numbers (R, G, B) from `a,b,c`, or one number for all three.
struct ChannelValues: ExpressibleByArgument {
    var values: [Double]

    init?(argument: String) {
        let parts = argument.split(separator: ",", omittingEmptySubsequences: false).map {
            Double($0.trimmingCharacters(in: .whitespaces))
        }
        guard parts.count == 1 || parts.count == 3, parts.allSatisfy({ $0?.isFinite == true }) else { return nil }
        values = parts.count == 1 ? Array(repeating: parts[0]!, count: 3) : parts.map { $0! }
    }
}

/// Images turned into the model's input.
struct ImageBatch {
    var files: [String]
    /// The S x S centre crops the model sees (before normalisation).
    var crops: [RGBImage]
    var pixels: FloatTensor
}

/// Class names from `--labels`, else the bundled ImageNet-1k names for a 1000-class model.
func classNames(labels: String?, classes: Int) throws -> [String]? {
    guard let labels else { return classes == ImageNetLabels.names.count ? ImageNetLabels.names : nil }
    guard let text = try? String(contentsOfFile: labels, encoding: .utf8) else {
        throw CLIError.invalid("\(labels): cannot read the label file")
    }
    var names = text.split(separator: "\n", omittingEmptySubsequences: false).map {
        String($0).trimmingCharacters(in: .whitespacesAndNewlines)
    }
    if names.last == "" { names.removeLast() }
    return names
}

/// Exactly one of `--input` / `--image`.
func checkOneInput(input: String?, images: ImageOptions) throws {
    if input != nil && !images.images.isEmpty {
        throw CLIError.invalid("give either --input (a pixel_values safetensors file) or --image (JPEG/PNG files), not both")
    }
    if input == nil && images.images.isEmpty {
        throw CLIError.invalid("nothing to run on: give --image FILE... (JPEG/PNG files or folders) or --input FILE.safetensors")
    }
}

func writeNote(_ message: String) {
    FileHandle.standardError.write(Data(("idlevit: note: " + message + "\n").utf8))
}
