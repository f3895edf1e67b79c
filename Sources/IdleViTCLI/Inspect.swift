import ArgumentParser
import IR
import IdleViTKit
import ModelDescription

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model file: format, tensors, recognised architecture, parameters; --graph prints the IR.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var idle: IdleOptions

    @Flag(help: "Print the IR graph as text (after the IdleViT rewrite when a schedule is given).")
    var graph = false

    func run() throws {
        let prepared = try model.prepare(idle)
        let loaded = prepared.loaded
        let a = prepared.architecture
        if model.json {
            var pairs: [(key: String, value: JSONValue)] = [
                ("file", .string(loaded.path)),
                ("format", .string(loaded.format.rawValue)),
                ("architecture", GraphJSON.encode(a)),
                ("family", ModelDescription.publishedName(a).map(JSONValue.string) ?? .null),
                ("variant", .string(a.variant)),
                ("preprocessing", prepared.preprocessing.json),
                ("parameters", .int(ModelDescription.parameterCount(prepared.architecture))),
                ("tensors", .array(loaded.sourceTensors.map {
                    .object([("name", .string($0.name)), ("dtype", .string($0.dtype)),
                             ("shape", .array($0.shape.map(JSONValue.int))), ("bytes", .int($0.bytes))])
                })),
                ("metadata", .object(loaded.sourceMetadata.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
                ("details", .object(loaded.details.map { ($0.0, .string($0.1)) })),
                ("notes", .array(loaded.recognized.notes.map(JSONValue.string))),
            ]
            if let schedule = prepared.schedule {
                pairs.append(("schedule", .array(schedule.kept.map { $0.map(JSONValue.int) ?? .null })))
            }
            if let checkpoint = loaded.checkpoint { pairs.append(("checkpoint", CheckpointSection.json(checkpoint))) }
            if graph { pairs.append(("graph", GraphJSON.encode(prepared.graph))) }
            printJSON(.object(pairs))
            return
        }
        if graph {
            print(GraphPrinter.text(prepared.graph), terminator: "")
            return
        }
        // Everything taken from the file is escaped: a metadata value with ANSI escapes or a
        // newline must not reach the terminal as it is.
        print("file:         \(loaded.path.escapedForMessage)")
        print("format:       \(loaded.format.displayName)")
        for (key, value) in loaded.details { print("\(key + ":")\(String(repeating: " ", count: max(1, 14 - key.count - 1)))\(value.lineSafe)") }
        print("architecture: \(a)")
        if let family = ModelDescription.publishedName(a) { print("family:       \(family)") }
        print("recognised:   \(loaded.recognized.notes.joined(separator: "; ").lineSafe)")
        print("parameters:   \(grouped(ModelDescription.parameterCount(prepared.architecture)))")
        let ops = prepared.graph.opHistogram.map { "\($0.0.rawValue) \($0.1)" }.joined(separator: ", ")
        print("IR:           \(prepared.graph.nodes.count) nodes (\(ops))")
        if let schedule = prepared.schedule {
            print("schedule:     \(schedule)")
        }
        let interesting = loaded.sourceMetadata.filter { $0.key != "graph" }.sorted { $0.key < $1.key }
        if !interesting.isEmpty {
            print("metadata:")
            for (key, value) in interesting {
                let shown = value.count > 160 ? String(value.prefix(157)) + "..." : value
                print("  \(key.escapedForMessage): \(shown.escapedForMessage)")
            }
        }
        if let checkpoint = loaded.checkpoint { print(CheckpointSection.text(checkpoint), terminator: "") }
        var table = Table(headers: ["tensor", "dtype", "shape", "bytes"], rightAligned: [3])
        for tensor in loaded.sourceTensors.sorted(by: { naturalOrder($0.name, $1.name) }) {
            table.add([tensor.name.escapedForMessage, tensor.dtype.escapedForMessage, describeShape(tensor.shape), grouped(tensor.bytes)])
        }
        print("\n\(loaded.sourceTensors.count) tensors:")
        print(table.render(), terminator: "")
    }
}

/// `blocks.2` before `blocks.10`: digit runs compare as numbers.
func naturalOrder(_ a: String, _ b: String) -> Bool {
    func parts(_ s: String) -> [(String, Int?)] {
        var out: [(String, Int?)] = []
        var current = ""
        var digits = false
        for c in s {
            if c.isASCII && c.isNumber != digits, !current.isEmpty {
                out.append((current, digits ? Int(current) : nil))
                current = ""
            }
            digits = c.isASCII && c.isNumber
            current.append(c)
        }
        if !current.isEmpty { out.append((current, digits ? Int(current) : nil)) }
        return out
    }
    for (x, y) in zip(parts(a), parts(b)) where x.0 != y.0 {
        if let m = x.1, let n = y.1 { return m < n }
        return x.0 < y.0
    }
    return a.count < b.count
}
