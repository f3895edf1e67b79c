/// The upper bounds idlevit puts on every number it takes from a file, metadata or a flag,
/// in one place.
///
/// They are generous for real Vision Transformers (ViT-g/14 at 518 px: depth 40, dim 1408,
/// 16 heads, MLP 6144, 1,370 tokens; ViT-22B: dim 6144, MLP 24576; ImageNet-21k: 21,843
/// classes; batch 1024) and small enough that a value within them cannot overflow the
/// arithmetic built on it (tokens x dim x batch fits in an Int) or make the process loop for
/// hours before the next check. A file or flag outside them is refused with one line naming
/// the limit; the README lists them.
///
/// Usage: `let depth = try Limits.depth.check(n, "architecture depth")` returns `n` when it
/// is within `minimum...maximum` and throws `LimitError.tooLarge / .tooSmall` otherwise.
public struct Limit: Sendable, Hashable, CustomStringConvertible {
    /// What is bounded, for messages ("depth", "image size").
    public let name: String
    public let minimum: Int
    public let maximum: Int

    public init(_ name: String, minimum: Int = 1, maximum: Int) {
        self.name = name
        self.minimum = minimum
        self.maximum = maximum
    }

    public var description: String { "\(name) (\(minimum)...\(maximum))" }

    /// `value` when `minimum <= value <= maximum`; `what` names it in the error (defaults to
    /// the limit's own name).
    @discardableResult
    public func check(_ value: Int, _ what: @autoclosure () -> String? = nil) throws(LimitError) -> Int {
        if value > maximum { throw .tooLarge(what() ?? name, value: String(value), limit: maximum) }
        if value < minimum { throw .tooSmall(what() ?? name, value: String(value), minimum: minimum) }
        return value
    }

    /// The same check for a value of another integer type (UInt64 from a header, Int64 from
    /// protobuf), converted to Int once it is known to fit.
    @discardableResult
    public func check<T: BinaryInteger>(_ value: T, _ what: @autoclosure () -> String? = nil) throws(LimitError) -> Int {
        if value > T(clamping: maximum) { throw .tooLarge(what() ?? name, value: String(value), limit: maximum) }
        if value < T(clamping: minimum) { throw .tooSmall(what() ?? name, value: String(value), minimum: minimum) }
        return Int(value)
    }

    /// Whether `value` is within the limit.
    public func contains(_ value: Int) -> Bool { value >= minimum && value <= maximum }
}

public enum Limits {
    // Model geometry.
    /// Transformer blocks (ViT-g: 40, ViT-22B: 48).
    public static let depth = Limit("depth", maximum: 1_024)
    /// Attention heads (ViT-22B: 48).
    public static let heads = Limit("heads", maximum: 1_024)
    /// Embedding width (ViT-22B: 6144).
    public static let embedDim = Limit("embedding dimension", maximum: 32_768)
    /// MLP hidden width (ViT-22B: 24576).
    public static let mlpHidden = Limit("MLP hidden dimension", maximum: 131_072)
    /// Input image side in pixels (518 for DINOv2 / ViT-g).
    public static let imageSize = Limit("image size", maximum: 8_192)
    /// Patch side in pixels.
    public static let patchSize = Limit("patch size", maximum: 1_024)
    /// Input channels (3 for RGB).
    public static let channels = Limit("input channels", maximum: 64)
    /// Tokens entering a block, patches plus class/distillation tokens (518 px / 14: 1,370).
    public static let tokens = Limit("token count", maximum: 65_536)
    /// Classifier outputs (ImageNet-21k: 21,843).
    public static let classes = Limit("class count", maximum: 1 << 20)

    // Running.
    /// Images per batch; the memory budget usually binds first.
    public static let batch = Limit("batch size", maximum: 65_536)
    /// Worker threads.
    public static let threads = Limit("thread count", maximum: 1_024)

    // Tensors and containers.
    /// Dimensions of one tensor (DeiT uses at most 5).
    public static let rank = Limit("tensor rank", minimum: 0, maximum: 8)
    /// Elements of one tensor (2^34: 64 GiB of F32, far above any ViT weight).
    public static let elementCount = Limit("element count", minimum: 0, maximum: 1 << 34)
    /// Tensors in one checkpoint, bundle, reference or ONNX model (ViT-22B has ~1,100 weights
    /// with Hugging Face's separate q, k, v).
    public static let tensorCount = Limit("tensor count", minimum: 0, maximum: 20_000)
    /// Bytes of a tensor, metadata key, dataset or op name.
    public static let nameBytes = Limit("name length", minimum: 0, maximum: 4_096)

    // Files read whole (the weights are mapped, never read whole).
    /// A labels file or config.json (ImageNet-21k labels with their names are ~1 MB).
    public static let textFileBytes = Limit("text file size", minimum: 0, maximum: 16 << 20)
    /// One compressed image file.
    public static let imageFileBytes = Limit("image file size", minimum: 0, maximum: 256 << 20)
    /// Decoded pixels of one image (8192 x 8192): the RGB buffer is at most 192 MiB.
    public static let imagePixels = Limit("image pixel count", maximum: 1 << 26)
    /// Bytes of one decoded image buffer (16-bit RGBA: 32 M pixels), and of libjpeg's working
    /// memory for it.
    public static let imageDecodedBytes = Limit("decoded image size", maximum: 256 << 20)
    /// Scans of one progressive JPEG: real encoders write about 10; thousands of empty scans
    /// each cost a pass over the whole image.
    public static let jpegScans = Limit("JPEG scan count", maximum: 100)

    /// Working memory `run`, `bench` and `eval` may plan for without `--max-memory`.
    public static let defaultMemoryBudgetBytes = 1 << 30
}
