import ArgumentParser
import Foundation
import IR
import IdleViTKit
import Images
import ModelDescription
import Synchronization

/// `--image` and its preprocessing options, shared by `run` and `visualize`.
struct ImageOptions: ParsableArguments {
    @Option(name: .customLong("image"), parsing: .upToNextOption,
            help: ArgumentHelp("JPEG or PNG files, or folders (every .jpg/.jpeg/.png inside, sorted by name).",
                               discussion: "Put MODEL before --image, which takes every following argument up to the next option.",
                               valueName: "file"))
    var images: [String] = []

    @OptionGroup var preprocessingFlags: PreprocessOptions

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
                throw CLIError.invalid("\(path.escapedForMessage): cannot list the folder: \(error.localizedDescription)")
            }
            guard names.count <= 4 * Limits.batch.maximum else {
                throw CLIError.invalid("\(path.escapedForMessage): the folder holds \(names.count) entries, more than a run can take")
            }
            let found = names.filter { name in
                !name.hasPrefix(".") && ["jpg", "jpeg", "png"].contains((name as NSString).pathExtension.lowercased())
            }.sorted()
            guard !found.isEmpty else { throw CLIError.invalid("\(path.escapedForMessage): the folder holds no .jpg, .jpeg or .png files") }
            paths += found.map { (path as NSString).appendingPathComponent($0) }
        }
        return paths
    }

    func transform(for prepared: PreparedModel) throws -> EvalTransform {
        try preprocessingFlags.transform(for: prepared)
    }

    /// Decodes and preprocesses `paths` into one `pixel_values` batch [B, 3, S, S].
    func load(_ paths: [String], for prepared: PreparedModel) throws -> ImageBatch {
        let architecture = prepared.architecture
        let transform = try transform(for: prepared)
        let size = architecture.imageSize
        var values: [Float] = []
        values.reserveCapacity(paths.count * 3 * size * size)
        var crops: [RGBImage] = []
        for path in paths {
            let decoded: DecodedImage
            do { decoded = try ImageDecoder.decode(path: path) } catch { throw CLIError.invalid(error.description) }
            for note in decoded.notes { writeNote("\(path.escapedForMessage): \(note)") }
            let crop = transform.crop(decoded.image)
            transform.normalise(crop, into: &values)
            crops.append(crop)
        }
        return ImageBatch(files: paths, crops: crops,
                          pixels: FloatTensor(shape: [paths.count, 3, size, size], values: values))
    }
}

/// `--crop-pct`, `--mean`, `--std`: the model's preprocessing (its config.json or bundle, else
/// its family's defaults), each value overridable; shared by `run`, `visualize` and `eval`.
struct PreprocessOptions: ParsableArguments {
    @Option(name: .customLong("crop-pct"),
            help: "Centre-crop fraction: the shorter side is resized to floor(S / crop-pct) before the S x S crop (S = the model's image size). Default: the model's config.json or bundle, else the family's (DeiT 0.875: 256 -> 224; DeiT-III 0.9; 1.0 at 384 px).")
    var cropPercent: Double?

    @Option(help: ArgumentHelp("Normalisation mean, R,G,B (or one value for all three); default: the model's (ImageNet's for DeiT).", valueName: "m"))
    var mean: ChannelValues?

    @Option(help: ArgumentHelp("Normalisation std, R,G,B (or one value for all three); default: the model's (ImageNet's for DeiT).", valueName: "s"))
    var std: ChannelValues?

    func validate() throws {
        if let cropPercent, !(cropPercent >= 0.05 && cropPercent <= 1) {
            throw ValidationError("--crop-pct \(cropPercent) is outside [0.05, 1]")
        }
        if let std, !std.values.allSatisfy({ $0 > 0 }) { throw ValidationError("--std values must be positive") }
    }

    /// The model's preprocessing with the flags applied over it.
    func preprocessing(for prepared: PreparedModel) throws -> Preprocessing {
        var result = prepared.preprocessing
        if let cropPercent { result.cropPercent = cropPercent; result.source = "flags" }
        if let mean { result.mean = mean.values; result.source = "flags" }
        if let std { result.std = std.values; result.source = "flags" }
        do { try result.validate() } catch { throw CLIError.invalid("preprocessing: \(error)") }
        guard result.interpolation == "bicubic" else {
            throw CLIError.invalid("the model's preprocessing uses \(result.interpolation.escapedForMessage) interpolation; idlevit resizes with bicubic only")
        }
        return result
    }

    func transform(for prepared: PreparedModel) throws -> EvalTransform {
        let architecture = prepared.architecture
        guard architecture.inChannels == 3 else {
            throw CLIError.invalid("the model takes \(architecture.inChannels) input channels; images give 3 (RGB)")
        }
        let preprocessing = try preprocessing(for: prepared)
        // floor(S / crop_pct) sizes the resized image; the flag or the model's file set it.
        do {
            let what = "the resize target floor(\(architecture.imageSize) / crop_pct \(preprocessing.cropPercent))"
            try Limits.imageSize.check(try Checked.int(rounding: Double(architecture.imageSize) / preprocessing.cropPercent, .down, what), what)
        } catch {
            throw CLIError.invalid(error.description)
        }
        var transform = EvalTransform(imageSize: architecture.imageSize, cropPercent: preprocessing.cropPercent)
        transform.mean = preprocessing.mean
        transform.std = preprocessing.std
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

/// Class names: `--labels FILE`, else the model's own (config.json's label names), else
/// ImageNet-1k's for a 1000-class model. The file must be a regular file of at most
/// `Limits.textFileBytes`, in UTF-8.
func classNames(labels: String?, classes: Int, modelLabels: [String]? = nil) throws -> [String]? {
    guard let labels else {
        if let modelLabels, modelLabels.count == classes { return modelLabels }
        return classes == ImageNetLabels.names.count ? ImageNetLabels.names : nil
    }
    let bytes: [UInt8]
    do { bytes = try RegularFile.read(labels, limit: Limits.textFileBytes) } catch {
        throw CLIError.invalid("\(labels.escapedForMessage): cannot read the label file: \(error.reason)")
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
        throw CLIError.invalid("\(labels.escapedForMessage): the label file is not UTF-8 text")
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

/// A note for the user (a lossy conversion of an image, say). Notes are printed when the
/// command succeeds; a failing command prints only its one error line.
func writeNote(_ message: String) {
    pendingNotes.withLock { $0.append(message) }
}

let pendingNotes = Mutex<[String]>([])

func flushNotes() {
    let notes = pendingNotes.withLock { notes in
        defer { notes.removeAll() }
        return notes
    }
    for note in notes { FileHandle.standardError.write(Data(("idlevit: note: " + note.lineSafe + "\n").utf8)) }
}
