import Images
import IR

/// Why an evaluation (or a streamed `run --image`) cannot go on. Every case names the file or
/// folder, escaped, so the CLI prints it as DESIGN §1's one line and exits with status 2.
public enum EvaluationError: Error, CustomStringConvertible {
    /// The image folder cannot be used: missing, unreadable, empty, a folder name that is no label.
    case folder(path: String, reason: String)
    /// A line of the `--labels-file` CSV is wrong (line 0: the file as a whole).
    case labelsFile(path: String, line: Int, reason: String)
    /// An image failed while `--strict` (or `run`, which stops at the first bad image) was asked.
    case image(ImageError)
    /// A file that could not be listed, with its reason, under `--strict`.
    case unusableFile(FailedFile)
    /// The model could not run a batch.
    case model(String)

    public var description: String {
        switch self {
        case .folder(let path, let reason): return "\(path.escapedForMessage): \(reason)"
        case .labelsFile(let path, let line, let reason):
            return line > 0 ? "\(path.escapedForMessage) line \(line): \(reason)" : "\(path.escapedForMessage): \(reason)"
        case .image(let error): return error.description
        case .unusableFile(let failed): return "\(failed.path.escapedForMessage): \(failed.reason)"
        case .model(let message): return message
        }
    }
}

/// A file that was not evaluated, and why (unreadable, not an image, not a regular file...).
public struct FailedFile: Sendable, Equatable {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}
