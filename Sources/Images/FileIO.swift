import IR

/// Reads a whole image file: a regular file (never a FIFO or device, which would block or
/// never end) of at most `Limits.imageFileBytes`, checked before anything is allocated.
func readFile(_ path: String) throws(ImageError) -> [UInt8] {
    do {
        return try RegularFile.read(path, limit: Limits.imageFileBytes)
    } catch {
        throw .unreadable(file: path, reason: error.reason)
    }
}
