import IR
import Images

/// File -> the model's input for one image: read and decoded by `ImageDecoder.decode(path:)`
/// (regular files only, at most `Limits.imageFileBytes`; decoded as PIL does),
/// resize and centre-crop, normalise (`EvalTransform`). Runs on the stream's worker threads.
public struct ImagePreprocessor: Sendable {
    public var transform: EvalTransform

    public init(transform: EvalTransform) {
        self.transform = transform
    }

    /// Floats per image: 3 x S x S.
    public var valuesPerImage: Int { 3 * transform.imageSize * transform.imageSize }

    /// One image's `pixel_values` [3, S, S] appended to `values`, and the decoder's notes
    /// (lossy conversions the user should hear about).
    public func prepare(path: String, into values: inout [Float]) throws(ImageError) -> [String] {
        let decoded = try ImageDecoder.decode(path: path)
        transform.normalise(transform.crop(decoded.image), into: &values)
        return decoded.notes
    }
}

extension ImageError {
    /// The message without the file name in front, for a list of failed files.
    public var reason: String {
        switch self {
        case .unreadable(_, let reason): return "cannot read the image: \(reason)"
        case .corrupt(_, let reason): return "corrupt image: \(reason)"
        case .unsupported(_, let reason): return "unsupported image: \(reason)"
        case .tooLarge(_, let reason): return "image too large: \(reason)"
        case .encoding(let reason): return reason
        }
    }
}
