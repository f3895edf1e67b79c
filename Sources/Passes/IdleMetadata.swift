import IR

/// The `idle` metadata entry (bundles, IR JSON): the schedule as JSON text,
/// `{"base_rate": r | null, "patch_count": Np, "layers": [i...], "keep_ratios": [K / Np or null per layer],
/// "kept": [K or null per layer]}`.
public enum IdleMetadata {
    public static func encode(_ schedule: IdleSchedule) -> String {
        JSONWriter.write(.object([
            ("base_rate", schedule.keepRatio.map(JSONValue.double) ?? .null),
            ("patch_count", .int(schedule.patchCount)),
            ("layers", .array(schedule.idleLayers.map(JSONValue.int))),
            ("keep_ratios", .array(schedule.kept.map { k in k.map { .double(Double($0) / Double(schedule.patchCount)) } ?? .null })),
            ("kept", .array(schedule.kept.map { $0.map(JSONValue.int) ?? .null })),
        ]))
    }
}
