#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Opening a file named by the user or by another file, the one way idlevit does it.
///
/// `open(O_RDONLY)` on a FIFO blocks until a writer appears, forever if none does, and a
/// character device such as /dev/zero reads without end. So every input is opened with
/// `O_NONBLOCK` (which makes opening a FIFO return at once), checked with `fstat` to be a
/// regular file, and only then mapped or read; a whole-file read checks the size against a
/// limit before it allocates anything.
public enum RegularFile {
    /// Why a path cannot be used as an input: the system's reason ("No such file or
    /// directory") or what the path is instead of a regular file ("a FIFO").
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }
    }

    /// An open regular file: its descriptor (the caller closes it) and its size in bytes.
    public struct Opened: Sendable {
        public let descriptor: Int32
        public let size: Int
        public let identity: Identity
    }

    /// Device and inode: two spellings of one path (`./a`, `a`, a symlink, a hard link) are
    /// one file exactly when these are equal.
    public struct Identity: Hashable, Sendable {
        public let device: UInt64
        public let inode: UInt64
    }

    /// Opens `path` read-only without blocking and requires a regular file.
    public static func open(_ path: String) throws(Failure) -> Opened {
        let fd = systemOpen(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { throw Failure(reason: systemReason()) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = systemReason()
            close(fd)
            throw Failure(reason: reason)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw Failure(reason: "not a regular file (\(kind(of: info.st_mode)))")
        }
        // Reads of a regular file never block; clear the flag so the descriptor behaves as
        // an ordinary one wherever it goes next.
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
        return Opened(descriptor: fd, size: Int(info.st_size),
                      identity: Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino)))
    }

    /// The whole content of a regular file of at most `limit.maximum` bytes. The size is
    /// checked before anything is allocated, and no more than the size read by `fstat` is
    /// ever read (a file growing meanwhile is cut there).
    public static func read(_ path: String, limit: Limit) throws(Failure) -> [UInt8] {
        let file = try open(path)
        defer { close(file.descriptor) }
        guard file.size <= limit.maximum else {
            throw Failure(reason: "the file has \(file.size) bytes, over the \(limit.name) limit of \(limit.maximum) bytes")
        }
        var bytes = [UInt8](repeating: 0, count: file.size)
        var offset = 0
        while offset < file.size {
            let got = bytes.withUnsafeMutableBytes { systemRead(file.descriptor, $0.baseAddress! + offset, file.size - offset) }
            if got < 0 {
                if errno == EINTR { continue }
                throw Failure(reason: systemReason())
            }
            if got == 0 { break }
            offset += got
        }
        if offset < file.size { bytes.removeSubrange(offset...) }
        return bytes
    }

    /// The identity of the file at `path` (symlinks followed), or nil when nothing is there.
    public static func identity(of path: String) -> Identity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    private static func systemReason() -> String { String(cString: strerror(errno)) }

    /// What a `stat` mode that is not a regular file is, for messages: "a FIFO", "a socket"...
    public static func kind(of mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "not a file"
        }
    }
}

// Outside the enum, whose own `open` and `read` would shadow the system calls.
private func systemOpen(_ path: String, _ flags: Int32) -> Int32 { open(path, flags) }
private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int { read(fd, buffer, count) }
