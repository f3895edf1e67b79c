import ArgumentParser
import Exporters
import Foundation
import IR
import IdleViTKit
import ModelDescription
import Images
import Importers
import Interpreter

/// `idlevit visualize`: which patches each idle layer computes on one image, as a PNG.
struct Visualize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw which patches each idle layer computes on an image, as a PNG.",
        discussion: "The PNG shows the centre crop the model sees, then one panel per idle layer: patches the layer "
            + "computed keep their colours inside a yellow outline, idle patches are dimmed. Each panel is titled "
            + "with the layer and its kept count (image patches kept / patches). --json also prints the selected "
            + "patch indices per layer (row-major in the patch grid).")

    @OptionGroup var model: ModelOptions
    @OptionGroup var idle: IdleOptions
    @OptionGroup var imageInput: ImageOptions

    @Option(name: [.customShort("o"), .customLong("output")], help: "The PNG to write.")
    var output: String

    @Option(help: "Panels per row (1 to 64).")
    var columns: Int = 5

    @Option(help: "Class names, one per line (default for 1000 classes: the bundled ImageNet-1k names).")
    var labels: String?

    @OptionGroup var execution: ExecutionOptions

    func validate() throws {
        do { try Limit("--columns", maximum: 64).check(columns) } catch { throw ValidationError(error.description) }
    }

    func run() throws {
        let paths = try imageInput.imagePaths()
        try refuseOutputs([output], overwriting: [model.model, labels].compactMap { $0 } + paths)
        guard paths.count == 1 else {
            throw CLIError.invalid(paths.isEmpty ? "give the image to draw with --image FILE"
                                                 : "visualize draws one image; --image names \(paths.count)")
        }
        let prepared = try model.prepare(idle)
        guard let schedule = prepared.schedule, !schedule.idleLayers.isEmpty else {
            throw CLIError.invalid("the model runs dense: pass --keep-ratio R (e.g. 0.7) or --kept-tokens, or give an IdleViT bundle")
        }
        let architecture = prepared.architecture
        let batch = try imageInput.load(paths, for: prepared)
        // Layers whose K keeps every patch run the dense block and have no selection to capture.
        let computed = Set(schedule.effective.idleLayers)
        let outputs: [String: Activation]
        let runner = try execution.runner(prepared)
        do {
            outputs = try runner.run(pixels: batch.pixels, capture: runner.selectionNames)
        } catch {
            throw CLIError.invalid(error.description)
        }

        let prefix = architecture.prefixTokens, patches = architecture.patchCount
        var layers: [(layer: Int, kept: Int, patches: [Int])] = []
        for layer in schedule.idleLayers {
            var selected = Array(0..<patches)
            if computed.contains(layer) {
                guard case .indices(_, let tokens)? = outputs[ActivationName.selected(layer).name] else {
                    throw CLIError.invalid("the graph has no selection output for layer \(layer)")
                }
                selected = tokens.map { Int($0) }.filter { $0 >= prefix }.map { $0 - prefix }.sorted()
            }
            layers.append((layer, schedule.kept[layer] ?? patches, selected))
        }

        let top = topClass(ModelRunner.logits(outputs), names: try classNames(labels: labels, classes: architecture.classes, modelLabels: prepared.labels))
        let size = architecture.imageSize
        var panels = [SelectionPicture.Panel(title: "INPUT \(size)X\(size)", selectedPatches: nil)]
        panels += layers.map { SelectionPicture.Panel(title: "LAYER \($0.layer): \($0.kept)/\(patches)", selectedPatches: Set($0.patches)) }
        let ratio = schedule.keepRatio.map { "KEEP RATIO \(formatRatio($0))   " } ?? ""
        let header = "\(displayName(paths[0]))   \(ratio)OUTLINED: COMPUTED   DIM: IDLE   TOP-1: \(top.text)"
        let picture = SelectionPicture(crop: batch.crops[0], patchSize: architecture.patchSize, header: header,
                                       panels: panels, columns: columns)
        let png: [UInt8]
        do { png = try PNGEncoder.encode(picture.render()) } catch { throw CLIError.invalid(error.description) }
        do {
            let file = try AtomicFile(destination: output)
            try file.write(png)
            try file.commit()
        } catch {
            throw CLIError.invalid(error.description)
        }

        if model.json {
            printJSON(.object([
                ("image", .string(paths[0])), ("output", .string(output)),
                ("width", .int(picture.width)), ("height", .int(picture.height)),
                ("keep_ratio", schedule.keepRatio.map(JSONValue.double) ?? .null),
                ("patch_grid", .array([.int(size / architecture.patchSize), .int(size / architecture.patchSize)])),
                ("prefix_tokens", .int(prefix)),
                ("top1", .object([("class", .int(top.index)), ("label", top.label.map(JSONValue.string) ?? .null),
                                  ("probability", .double(top.probability))])),
                ("layers", .array(layers.map { entry in
                    .object([("layer", .int(entry.layer)), ("kept", .int(entry.kept)),
                             ("selected_patches", .array(entry.patches.map(JSONValue.int))),
                             ("selected_tokens", .array((Array(0..<prefix) + entry.patches.map { $0 + prefix }).map(JSONValue.int)))])
                })),
            ]))
        } else {
            print("wrote \(output): \(picture.width)x\(picture.height) px, the input and \(layers.count) idle layers")
            var table = Table(headers: ["layer", "kept", "of"], rightAligned: [1, 2])
            for entry in layers { table.add([ActivationName.block(entry.layer).name, String(entry.patches.count), String(patches)]) }
            print(table.render(), terminator: "")
            print("top-1: \(top.text)")
        }
    }

    private func formatRatio(_ r: Double) -> String {
        var text = String(format: "%.4f", r)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }

    /// The highest-scoring class and its softmax probability.
    private func topClass(_ logits: FloatTensor?, names: [String]?) -> (index: Int, label: String?, probability: Double, text: String) {
        guard let logits, let best = rankClasses(Array(logits.buffer), top: 1, names: names).first else { return (0, nil, 0, "?") }
        let name = best.label.map { String($0.split(separator: ",").first ?? Substring($0)) } ?? "CLASS \(best.index)"
        return (best.index, best.label, best.probability, "\(name) (\(String(format: "%.1f", best.probability * 100))%)")
    }
}
