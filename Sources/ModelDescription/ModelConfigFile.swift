import Foundation
import IR
import Importers

/// What a `config.json` next to the weights says that weights cannot: a Hugging Face
/// transformers config (`num_attention_heads`, `layer_norm_eps`, `id2label`) or a timm hub
/// config (`pretrained_cfg` with mean, std, crop_pct, interpolation; `label_names`).
public struct ModelConfigFile: Sendable {
    public var heads: Int?
    public var layerNormEps: Double?
    public var hiddenSize: Int?
    public var layers: Int?
    /// Class names by index, when the config lists them.
    public var labels: [String]?
    public var preprocessing: Preprocessing?

    public static let fileName = "config.json"

    /// Reads `config.json` in the folder of `modelPath`, if there is one.
    public static func load(nextTo modelPath: String) throws(ImportError) -> ModelConfigFile? {
        let folder = URL(fileURLWithPath: modelPath).deletingLastPathComponent()
        let url = folder.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let bytes: [UInt8]
        do { bytes = try RegularFile.read(url.path, limit: Limits.textFileBytes) } catch {
            throw .unreadable(file: fileName, reason: error.description)
        }
        let json: JSONValue
        do { json = try JSONParser.parse(bytes) } catch {
            throw .invalidFile(file: fileName, format: "JSON", rule: error.description)
        }
        return try decode(json)
    }

    static func decode(_ json: JSONValue) throws(ImportError) -> ModelConfigFile {
        func bad(_ rule: String) -> ImportError { .invalidFile(file: fileName, format: "model config", rule: rule) }
        guard json.objectPairs != nil else { throw bad("not a JSON object") }
        func positive(_ key: String, _ limit: Limit) throws(ImportError) -> Int? {
            guard let value = json[key] else { return nil }
            guard value.isIntegerLiteral, let n = value.intValue, limit.contains(n) else {
                throw bad("'\(key)' must be an integer in \(limit.minimum)...\(limit.maximum)")
            }
            return n
        }
        var config = ModelConfigFile()
        config.heads = try positive("num_attention_heads", Limits.heads)
        config.hiddenSize = try positive("hidden_size", Limits.embedDim)
        config.layers = try positive("num_hidden_layers", Limits.depth)
        if let eps = json["layer_norm_eps"] {
            guard let value = eps.doubleValue, value.isFinite, value >= 0, value < 1 else { throw bad("'layer_norm_eps' must be a number in [0, 1)") }
            config.layerNormEps = value
        }
        // Labels: timm's `label_names` list, or transformers' `id2label` {"0": "tench", ...}.
        if let names = json["label_names"]?.arrayValue {
            guard names.count <= Limits.classes.maximum else { throw bad("'label_names' lists too many classes") }
            let labels = names.compactMap(\.stringValue)
            guard labels.count == names.count else { throw bad("'label_names' must be a list of strings") }
            config.labels = labels
        } else if let pairs = json["id2label"]?.objectPairs, !pairs.isEmpty {
            guard pairs.count <= Limits.classes.maximum else { throw bad("'id2label' lists too many classes") }
            var labels = [String?](repeating: nil, count: pairs.count)
            for pair in pairs {
                guard let index = Int(pair.key), (0..<pairs.count).contains(index), let label = pair.value.stringValue, labels[index] == nil else {
                    throw bad("'id2label' must map each index 0..<\(pairs.count) to one name")
                }
                labels[index] = label
            }
            config.labels = labels.compactMap { $0 }
        }
        if let cfg = json["pretrained_cfg"], cfg.objectPairs != nil {
            do { config.preprocessing = try Preprocessing.decode(cfg, source: fileName) } catch { throw bad("'pretrained_cfg': \(error)") }
        }
        return config
    }
}
