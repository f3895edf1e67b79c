#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a whole regular file. Opened non-blocking, so a FIFO put where a file was listed
/// cannot hang a reader thread, and checked with `fstat` on the open descriptor (no window
/// between the check and the read). The size is checked against `limit` before anything is
/// allocated.
enum RegularFileReader {
    enum Failure: Error {
        case unreadable(String)
        case notRegular
        case tooLarge(Int)
    }

    static func read(_ path: String, limit: Int) throws(Failure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .unreadable(String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw .notRegular }
        let size = Int(info.st_size)
        guard size <= limit else { throw .tooLarge(size) }
        var bytes = [UInt8](repeating: 0, count: size)
        var offset = 0
        while offset < size {
            let got = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + offset, size - offset) }
            if got < 0 {
                if errno == EINTR { continue }
                throw .unreadable(String(cString: strerror(errno)))
            }
            if got == 0 { break }  // the file shrank while we read: decode what is there
            offset += got
        }
        if offset < size { bytes.removeSubrange(offset...) }
        return bytes
    }
}
