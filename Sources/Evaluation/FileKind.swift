#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import IR

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
        default: self = .other(RegularFile.kind(of: info.st_mode))
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

/// Refuses a path that is not a folder, with the reason `stat` gives.
func requireFolder(_ path: String) throws(EvaluationError) {
    switch FileKind(path: path) {
    case .folder: return
    case .unreadable(let why): throw .folder(path: path, reason: "cannot open the folder: \(why)")
    default: throw .folder(path: path, reason: "not a folder")
    }
}

/// The visible entries of a folder (names starting with "." are skipped: `.DS_Store`,
/// editors' files), or why it cannot be listed.
func listFolder(_ path: String) throws(EvaluationError) -> [String] {
    let names: [String]
    do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
        try requireFolder(path)
        throw .folder(path: path, reason: "cannot list the folder: \((error as NSError).localizedDescription)")
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
