import IR

/// Why an image could not be read or written. Every case names the file (escaped when printed), so the CLI can print
/// it as the one line DESIGN §1 asks for and exit with status 2.
public enum ImageError: Error, CustomStringConvertible, Equatable {
    /// The file could not be opened or read (missing, a folder, no permission).
    case unreadable(file: String, reason: String)
    /// The bytes are not a valid image: corrupt or truncated data.
    case corrupt(file: String, reason: String)
    /// A valid file of a kind we do not turn into pixels (GIF, 12-bit JPEG, ...).
    case unsupported(file: String, reason: String)
    /// Too many pixels to hold, or out of memory.
    case tooLarge(file: String, reason: String)
    /// The picture could not be encoded.
    case encoding(String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason): return "\(file.escapedForMessage): cannot read the image: \(reason)"
        case .corrupt(let file, let reason): return "\(file.escapedForMessage): corrupt image: \(reason)"
        case .unsupported(let file, let reason): return "\(file.escapedForMessage): unsupported image: \(reason)"
        case .tooLarge(let file, let reason): return "\(file.escapedForMessage): image too large: \(reason)"
        case .encoding(let reason): return "cannot encode the PNG: \(reason)"
        }
    }
}
