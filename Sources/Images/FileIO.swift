#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a whole file, with the system's reason on failure (no such file, is a directory...).
func readFile(_ path: String) throws(ImageError) -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw .unreadable(file: path, reason: String(cString: strerror(errno))) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw .unreadable(file: path, reason: String(cString: strerror(errno))) }
    guard (info.st_mode & S_IFMT) == S_IFREG else { throw .unreadable(file: path, reason: "not a regular file") }
    let size = Int(info.st_size)
    // Hundreds of megabytes of JPEG would decode to more pixels than PIL allows anyway.
    guard size <= 1 << 30 else { throw .tooLarge(file: path, reason: "the file is larger than 1 GiB") }
    var bytes = [UInt8](repeating: 0, count: size)
    var offset = 0
    while offset < size {
        let got = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + offset, size - offset) }
        if got < 0 {
            if errno == EINTR { continue }
            throw .unreadable(file: path, reason: String(cString: strerror(errno)))
        }
        if got == 0 { break }
        offset += got
    }
    return offset == size ? bytes : Array(bytes.prefix(offset))
}
