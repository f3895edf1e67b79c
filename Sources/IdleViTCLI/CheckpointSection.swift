import Foundation
import IR
import TorchImporter

/// `inspect`'s account of what a PyTorch checkpoint holds besides the loaded weights: its
/// top-level entries, the fields of objects like the training `args`, and the globals the
/// pickle names that idlevit left inert (never imported, never called).
enum CheckpointSection {
    static func text(_ contents: CheckpointContents) -> String {
        var out = ""
        if !contents.entries.isEmpty {
            out += "checkpoint:\n"
            let width = min(24, contents.entries.map(\.key.count).max() ?? 0)
            for entry in contents.entries {
                out += "  " + entry.key.padding(toLength: max(width, entry.key.count), withPad: " ", startingAt: 0) + "  " + entry.summary + "\n"
            }
        }
        for object in contents.objects {
            out += "\(object.key) (\(object.type), \(object.total) field\(object.total == 1 ? "" : "s")):\n"
            let width = min(24, object.fields.map(\.key.count).max() ?? 0)
            for field in object.fields {
                out += "  " + field.key.padding(toLength: max(width, field.key.count), withPad: " ", startingAt: 0) + " = " + field.summary + "\n"
            }
            if object.total > object.fields.count { out += "  ... \(object.total - object.fields.count) more\n" }
        }
        if !contents.inertGlobals.isEmpty {
            out += "inert globals (named by the pickle, not run): " + contents.inertGlobals.joined(separator: ", ") + "\n"
        }
        return out
    }

    static func json(_ contents: CheckpointContents) -> JSONValue {
        func entries(_ list: [CheckpointContents.Entry]) -> JSONValue {
            .object(list.map { ($0.key, .string($0.summary)) })
        }
        return .object([
            ("state_dict", .string(contents.stateDict)),
            ("candidates", .array(contents.candidates.map(JSONValue.string))),
            ("entries", entries(contents.entries)),
            ("objects", .object(contents.objects.map { ($0.key, .object([("type", .string($0.type)), ("fields", entries($0.fields)), ("total", .int($0.total))])) })),
            ("inert_globals", .array(contents.inertGlobals.map(JSONValue.string))),
        ])
    }
}
