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

    @Option(name: .customLong("crop-pct"),
            help: "Centre-crop fraction: the shorter side is resized to floor(S / crop-pct) before the S x S crop (S = the model's image size). Default: the model's config.json or bundle, else the family's (DeiT 0.875: 256 -> 224; DeiT-III 0.9; 1.0 at 384 px).")
    var cropPercent: Double?

    @Option(help: "Normalisation mean, three comma-separated values (default: the model's; ImageNet's for DeiT).")
    var mean: String?

    @Option(help: "Normalisation std, three comma-separated values (default: the model's; ImageNet's for DeiT).")
    var std: String?

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
                throw CLIError.invalid("\(path.escapedForMessage): the folder holds \(names.count) entries, more than a batch can take")
            }
            let found = names.filter { name in
                !name.hasPrefix(".") && ["jpg", "jpeg", "png"].contains((name as NSString).pathExtension.lowercased())
            }.sorted()
            guard !found.isEmpty else { throw CLIError.invalid("\(path.escapedForMessage): the folder holds no .jpg, .jpeg or .png files") }
            paths += found.map { (path as NSString).appendingPathComponent($0) }
        }
        do { try Limits.batch.check(paths.count, "the number of --image files") } catch { throw CLIError.invalid(error.description) }
        return paths
    }

    /// The model's preprocessing with the flags applied over it.
    func preprocessing(for prepared: PreparedModel) throws -> Preprocessing {
        var result = prepared.preprocessing
        func triple(_ text: String, _ flag: String) throws -> [Double] {
            let values = text.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard values.count == 3, let parsed = values as? [Double] else {
                throw CLIError.invalid("\(flag) '\(text.escapedForMessage)' is not three comma-separated numbers")
            }
            return parsed
        }
        if let cropPercent { result.cropPercent = cropPercent; result.source = "flags" }
        if let mean { result.mean = try triple(mean, "--mean"); result.source = "flags" }
        if let std { result.std = try triple(std, "--std"); result.source = "flags" }
        do { try result.validate() } catch { throw CLIError.invalid("preprocessing: \(error)") }
        guard result.interpolation == "bicubic" else {
            throw CLIError.invalid("the model's preprocessing uses \(result.interpolation.escapedForMessage) interpolation; idlevit resizes with bicubic only")
        }
        return result
    }

    func transform(for prepared: PreparedModel) throws -> EvalTransform {
        let architecture = prepared.architecture
        guard architecture.inChannels == 3 else {
            throw CLIError.invalid("the model takes \(architecture.inChannels) input channels; --image gives 3 (RGB)")
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

/// Images turned into the model's input.
struct ImageBatch {
    var files: [String]
    /// The S x S centre crops the model sees (before normalisation).
    var crops: [RGBImage]
    var pixels: FloatTensor
}

/// Class names from `--labels`, else the bundled ImageNet-1k names for a 1000-class model.
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
