import IR

/// How images are prepared for a model at evaluation (timm's `pretrained_cfg`): resize the
/// shorter side to `floor(S / cropPercent)` with `interpolation`, centre-crop S, scale to
/// [0, 1], normalise with `mean` / `std` per channel.
public struct Preprocessing: Hashable, Sendable, CustomStringConvertible {
    public var mean: [Double]
    public var std: [Double]
    public var cropPercent: Double
    /// timm's name: "bicubic" (what every model here uses), "bilinear", ...
    public var interpolation: String
    /// Where these values came from, for `inspect` ("DeiT default", "config.json", "bundle").
    public var source: String

    public init(mean: [Double], std: [Double], cropPercent: Double, interpolation: String = "bicubic", source: String) {
        self.mean = mean
        self.std = std
        self.cropPercent = cropPercent
        self.interpolation = interpolation
        self.source = source
    }

    /// timm's `IMAGENET_DEFAULT_MEAN` / `IMAGENET_DEFAULT_STD`.
    public static let imageNetMean = [0.485, 0.456, 0.406]
    public static let imageNetStd = [0.229, 0.224, 0.225]
    /// DeiT's and IdleViT's evaluation crop: 256 -> 224.
    public static let deitCropPercent = 0.875

    /// What a model evaluates with when nothing says otherwise: DeiT's ImageNet statistics and
    /// 0.875 crop (ViTs cannot be told from DeiTs by their weights, so they need a config.json
    /// or flags), DeiT-III's 0.9 (timm's `deit3_*` configs), and a full-image crop at 384 px
    /// and above, as timm's configs for those sizes say.
    public static func defaults(for a: ModelArchitecture) -> Preprocessing {
        let deit3 = a.layerScale || !a.prefixPositions
        let crop = a.imageSize >= 384 ? 1.0 : (deit3 ? 0.9 : deitCropPercent)
        return Preprocessing(mean: imageNetMean, std: imageNetStd, cropPercent: crop,
                             source: "\(deit3 ? "DeiT-III" : "DeiT") default")
    }

    /// Each value within what an image pipeline can use: three finite channels, positive
    /// std, crop in (0, 1].
    public func validate() throws(PreprocessingError) {
        guard mean.count == 3, std.count == 3 else { throw .invalid("mean and std need 3 values (RGB), have \(mean.count) and \(std.count)") }
        guard mean.allSatisfy({ $0.isFinite && abs($0) <= 1e3 }) else { throw .invalid("mean \(mean) is not finite") }
        guard std.allSatisfy({ $0.isFinite && $0 > 1e-6 && $0 <= 1e3 }) else { throw .invalid("std \(std) must be positive") }
        // Below 0.05 the resize side overflows any image limit; no model crops that little.
        guard cropPercent.isFinite, cropPercent >= 0.05, cropPercent <= 1 else { throw .invalid("crop_pct \(cropPercent) is outside [0.05, 1]") }
    }

    public var description: String {
        func list(_ values: [Double]) -> String { "(" + values.map(formatDouble).joined(separator: ", ") + ")" }
        return "mean \(list(mean)), std \(list(std)), crop \(formatDouble(cropPercent)), \(interpolation) (\(source))"
    }

    /// The JSON bundles store under `preprocessing`.
    public var json: JSONValue {
        .object([("mean", .array(mean.map(JSONValue.double))), ("std", .array(std.map(JSONValue.double))),
                 ("crop_pct", .double(cropPercent)), ("interpolation", .string(interpolation))])
    }

    /// Reads `json` (a bundle's `preprocessing`, or timm's `pretrained_cfg`, whose other keys
    /// are ignored), validated.
    public static func decode(_ json: JSONValue, source: String) throws(PreprocessingError) -> Preprocessing {
        func numbers(_ key: String) throws(PreprocessingError) -> [Double] {
            guard let items = json[key]?.arrayValue else { throw .invalid("'\(key)' must be a list of numbers") }
            let values = items.compactMap(\.doubleValue)
            guard values.count == items.count else { throw .invalid("'\(key)' must be a list of numbers") }
            return values
        }
        guard let crop = json["crop_pct"]?.doubleValue else { throw .invalid("'crop_pct' must be a number") }
        let interpolation = json["interpolation"]?.stringValue ?? "bicubic"
        guard interpolation.utf8.count <= 32 else { throw .invalid("'interpolation' is too long") }
        let result = Preprocessing(mean: try numbers("mean"), std: try numbers("std"), cropPercent: crop,
                                   interpolation: interpolation, source: source)
        try result.validate()
        return result
    }
}

public enum PreprocessingError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let message): return message.escapedForMessage
        }
    }
}
