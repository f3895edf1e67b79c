import ArgumentParser
import IR
import IdleViTKit
import ModelDescription

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Parameters and multiply-accumulates per layer, dense and idle (IDLEVIT.md §4).")

    @OptionGroup var model: ModelOptions
    @OptionGroup var idle: IdleOptions

    func run() throws {
        let prepared = try model.prepare(idle)
        let a = prepared.architecture
        let summary = CostModel.summary(a, schedule: prepared.schedule)
        let parameters = ModelDescription.parameterCount(a)
        if model.json {
            printJSON(.object([
                ("parameters", .int(parameters)),
                ("dense_gmacs", .double(summary.denseMacs / 1e9)),
                ("gmacs", .double(summary.macs / 1e9)),
                ("ratio", .double(summary.ratio)),
                ("keep_ratio", prepared.schedule?.keepRatio.map(JSONValue.double) ?? .null),
                ("layers", .array(summary.layers.map {
                    .object([("name", .string($0.name)), ("kept_tokens", .int($0.keptTokens)), ("gmacs", .double($0.macs / 1e9)),
                             ("idle", .bool($0.idle))])
                })),
            ]))
            return
        }
        print("model:       \(prepared.modelName) (\(a))")
        print("parameters:  \(grouped(parameters))")
        var table = Table(headers: ["layer", "kind", "kept tokens", "GMACs"], rightAligned: [2, 3])
        for layer in summary.layers {
            table.add([layer.name, layer.idle ? "idle" : "dense", String(layer.keptTokens), fixed(layer.macs / 1e9, 4)])
        }
        print(table.render(), terminator: "")
        print("dense GMACs: \(fixed(summary.denseMacs / 1e9, 3))")
        if let schedule = prepared.schedule {
            print("idle GMACs:  \(fixed(summary.macs / 1e9, 3))  (keep ratio \(schedule.keepRatio.map { fixed($0, 3) } ?? "explicit"), \(fixed(summary.ratio, 3))x fewer)")
        }
    }
}
