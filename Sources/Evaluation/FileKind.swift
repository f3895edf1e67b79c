#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// What a path is, from `stat` (symbolic links followed, as an image folder of links to the
/// real files is common): only regular files are ever opened, so a FIFO or a device in the
/// folder is reported instead of blocking the reader.
enum FileKind: Equatable {
    case regular
    case folder
    /// Anything else, described for the failed-files list ("a FIFO", "a socket"...).
    case other(String)
    /// `stat` failed; the system's reason.
    case unreadable(String)

    init(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            self = .unreadable(String(cString: strerror(errno)))
            return
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .folder
        case S_IFIFO: self = .other("a FIFO")
        case S_IFSOCK: self = .other("a socket")
        case S_IFCHR: self = .other("a character device")
        case S_IFBLK: self = .other("a block device")
        default: self = .other("not a regular file")
        }
    }

    /// Why a non-regular file cannot be an image, for `FailedFile.reason`.
    var reasonNotAnImage: String {
        switch self {
        case .regular: return ""
        case .folder: return "a folder, not an image file"
        case .other(let what): return "\(what), not an image file"
        case .unreadable(let why): return "cannot read the file: \(why)"
        }
    }
}

/// The visible entries of a folder (names starting with "." are skipped: `.DS_Store`,
/// editors' files), or why it cannot be listed.
func listFolder(_ path: String) throws(EvaluationError) -> [String] {
    let names: [String]
    do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
        switch FileKind(path: path) {
        case .unreadable(let why): throw .folder(path: path, reason: "cannot open the folder: \(why)")
        case .folder: throw .folder(path: path, reason: "cannot list the folder: \((error as NSError).localizedDescription)")
        default: throw .folder(path: path, reason: "not a folder")
        }
    }
    return names.filter { !$0.hasPrefix(".") }
}

/// Joins a folder and an entry name.
func joinPath(_ folder: String, _ name: String) -> String {
    folder.hasSuffix("/") ? folder + name : folder + "/" + name
}

/// Byte order of paths (what `ls` shows in the C locale): the same order on every machine and
/// for every Unicode normalisation the file system hands back.
func pathPrecedes(_ a: String, _ b: String) -> Bool {
    a.utf8.lexicographicallyPrecedes(b.utf8)
}
