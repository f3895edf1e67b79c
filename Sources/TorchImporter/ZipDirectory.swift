import IR

/// One file in a zip archive, as its central directory and local header describe it.
struct ZipEntry: Sendable {
    var name: String
    /// 0 = stored; everything else is compressed.
    var method: UInt16
    var localHeaderOffset: Int
    /// The entry's bytes in the archive (stored: its content).
    var data: Range<Int>
    var uncompressedSize: Int
}

struct CheckpointError: Error, Sendable {
    var message: String
    init(_ message: String) { self.message = message }
}

/// The central directory of a zip archive, validated against the bytes it describes.
///
/// Why not ZIPFoundation (0.9.20 is in the mirror): it reads entries through a FILE* into
/// buffers and extracts by copying, with no way to hand out the offset of a stored entry's
/// bytes for a memory map, and it checks neither overlapping entries nor names against a
/// folder. torch.save only writes stored entries, so what idlevit needs is the directory:
/// ~150 lines, every number checked against the file before use.
///
/// Checks: end of central directory found where its comment length says (zip64 locator and
/// record when present, as torch always writes them); one disk; the entry count within
/// `TorchLimits.zipEntries` and the directory's size; each header's name, sizes and offsets
/// (zip64 extra fields where the 32-bit ones say 0xFFFFFFFF) inside the file; the local
/// header matching the central one; data ending before the directory; no two entries
/// overlapping; no encryption; no duplicate, absolute, `..`, `.` or backslash names.
/// Compressed entries are refused (torch never writes them; inflating one is the way to a
/// zip bomb).
enum ZipDirectory {
    static func read(_ bytes: UnsafeRawBufferPointer) throws(CheckpointError) -> [ZipEntry] {
        let size = bytes.count
        guard size >= 22 else { throw CheckpointError("zip archive of \(size) bytes has no end of central directory") }
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
        func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }
        func int(_ value: UInt64, _ what: String) throws(CheckpointError) -> Int {
            guard value <= UInt64(size) else { throw CheckpointError("zip \(what) \(value) is past the end of the file (\(size) bytes)") }
            return Int(value)
        }

        // End of central directory: the last signature whose comment reaches the end exactly.
        var eocd = -1
        var candidate = size - 22
        while candidate >= max(0, size - 22 - 0xFFFF) {
            if u32(candidate) == 0x0605_4B50, candidate + 22 + u16(candidate + 20) == size { eocd = candidate; break }
            candidate -= 1
        }
        guard eocd >= 0 else { throw CheckpointError("no zip end of central directory record") }
        var entryCount = u16(eocd + 10)
        var directorySize = UInt64(u32(eocd + 12))
        var directoryOffset = UInt64(u32(eocd + 16))
        var directoryLimit = eocd
        guard u16(eocd + 4) == 0, u16(eocd + 6) == 0, u16(eocd + 8) == entryCount else {
            throw CheckpointError("a multi-disk zip archive")
        }
        if eocd >= 20, u32(eocd - 20) == 0x0706_4B50 {
            // Zip64: the locator points at the zip64 end record, which has the 64-bit fields.
            guard u32(eocd - 16) == 0, u32(eocd - 4) <= 1 else { throw CheckpointError("a multi-disk zip64 archive") }
            let record = try int(u64(eocd - 12), "zip64 end record offset")
            guard record <= eocd - 20 - 56, u32(record) == 0x0606_4B50 else {
                throw CheckpointError("the zip64 end of central directory record is not where its locator says")
            }
            guard u32(record + 16) == 0, u32(record + 20) == 0, u64(record + 24) == u64(record + 32) else {
                throw CheckpointError("a multi-disk zip64 archive")
            }
            let count64 = u64(record + 32)
            guard count64 <= UInt64(TorchLimits.zipEntries.maximum) else {
                throw CheckpointError("zip archive declares \(count64) entries, over the limit of \(TorchLimits.zipEntries.maximum)")
            }
            entryCount = Int(count64)
            directorySize = u64(record + 40)
            directoryOffset = u64(record + 48)
            directoryLimit = record
        }
        let start = try int(directoryOffset, "central directory offset")
        let length = try int(directorySize, "central directory size")
        guard length <= directoryLimit - start, start <= directoryLimit else {
            throw CheckpointError("the zip central directory (offset \(start), \(length) bytes) runs past its end record")
        }
        guard entryCount <= length / 46 else {
            throw CheckpointError("zip archive declares \(entryCount) entries, more than its \(length)-byte directory can hold")
        }

        var entries: [ZipEntry] = []
        entries.reserveCapacity(entryCount)
        var names = Set<String>()
        var p = start
        let end = start + length
        for index in 0..<entryCount {
            guard end - p >= 46, u32(p) == 0x0201_4B50 else { throw CheckpointError("zip central directory entry \(index) is malformed") }
            let flags = u16(p + 8), method = UInt16(u16(p + 10))
            var compressed = UInt64(u32(p + 20)), uncompressed = UInt64(u32(p + 24))
            let nameLength = u16(p + 28), extraLength = u16(p + 30), commentLength = u16(p + 32)
            var disk = u16(p + 34)
            var localOffset = UInt64(u32(p + 42))
            let headerLength = 46 + nameLength + extraLength + commentLength
            guard end - p >= headerLength else { throw CheckpointError("zip central directory entry \(index) runs past the directory") }
            guard let name = String(validating: UnsafeRawBufferPointer(rebasing: bytes[(p + 46)..<(p + 46 + nameLength)]), as: UTF8.self) else {
                throw CheckpointError("zip entry \(index) has a name that is not UTF-8")
            }
            // Zip64 extra field: the 64-bit values of the fields saturated at 0xFFFFFFFF.
            var extra = p + 46 + nameLength
            let extraEnd = extra + extraLength
            while extraEnd - extra >= 4 {
                let id = u16(extra), fieldLength = u16(extra + 2)
                guard extraEnd - extra - 4 >= fieldLength else { throw CheckpointError("zip entry '\(name.escapedForMessage)' has a malformed extra field") }
                if id == 0x0001 {
                    var q = extra + 4
                    let qEnd = q + fieldLength
                    func next64() throws(CheckpointError) -> UInt64 {
                        guard qEnd - q >= 8 else { throw CheckpointError("zip entry '\(name.escapedForMessage)' has a short zip64 field") }
                        defer { q += 8 }
                        return u64(q)
                    }
                    if uncompressed == 0xFFFF_FFFF { uncompressed = try next64() }
                    if compressed == 0xFFFF_FFFF { compressed = try next64() }
                    if localOffset == 0xFFFF_FFFF { localOffset = try next64() }
                    if disk == 0xFFFF, qEnd - q >= 4 { disk = u32(q) }
                }
                extra += 4 + fieldLength
            }
            p += headerLength

            guard disk == 0 else { throw CheckpointError("zip entry '\(name.escapedForMessage)' is on another disk") }
            guard flags & 0x41 == 0 else { throw CheckpointError("zip entry '\(name.escapedForMessage)' is encrypted") }
            try checkName(name)
            guard names.insert(name).inserted else { throw CheckpointError("zip entry '\(name.escapedForMessage)' appears twice") }
            guard method == 0 else {
                throw CheckpointError("zip entry '\(name.escapedForMessage)' is compressed (method \(method)); torch.save stores entries uncompressed, so this file was repacked: save it again with torch.save")
            }
            guard compressed == uncompressed else {
                throw CheckpointError("zip entry '\(name.escapedForMessage)' is stored but declares \(compressed) bytes stored and \(uncompressed) bytes of content")
            }

            // The local header must agree with the central one; the data follows it.
            let local = try int(localOffset, "offset of entry '\(name.escapedForMessage)'")
            guard start - local >= 30, u32(local) == 0x0403_4B50 else {
                throw CheckpointError("zip entry '\(name.escapedForMessage)' has no local header at offset \(local)")
            }
            let localNameLength = u16(local + 26), localExtraLength = u16(local + 28)
            guard UInt16(u16(local + 8)) == method, localNameLength == nameLength,
                  start - local - 30 >= localNameLength + localExtraLength,
                  bytes[(local + 30)..<(local + 30 + nameLength)].elementsEqual(bytes[(p - headerLength + 46)..<(p - headerLength + 46 + nameLength)]) else {
                throw CheckpointError("zip entry '\(name.escapedForMessage)': its local header does not match the central directory")
            }
            let dataStart = local + 30 + localNameLength + localExtraLength
            guard compressed <= UInt64(start - dataStart) else {
                throw CheckpointError("zip entry '\(name.escapedForMessage)' (\(compressed) bytes at offset \(dataStart)) runs into the central directory")
            }
            let dataLength = Int(compressed)
            entries.append(ZipEntry(name: name, method: method, localHeaderOffset: local,
                                    data: dataStart ..< dataStart + dataLength, uncompressedSize: dataLength))
        }
        guard p == end else { throw CheckpointError("the zip central directory has \(end - p) bytes after its \(entryCount) entries") }

        // No two entries may share bytes: an archive whose entries overlap is a zip bomb's trick.
        let ordered = entries.sorted { $0.localHeaderOffset < $1.localHeaderOffset }
        for (before, after) in zip(ordered, ordered.dropFirst()) where after.localHeaderOffset < before.data.upperBound {
            throw CheckpointError("zip entries '\(before.name.escapedForMessage)' and '\(after.name.escapedForMessage)' overlap")
        }
        return entries
    }

    /// A relative path of plain components: nothing absolute, no `..` or `.`, no backslash,
    /// no NUL or control characters, no empty components.
    static func checkName(_ name: String) throws(CheckpointError) {
        let bad: Bool
        if name.isEmpty || name.hasPrefix("/") || name.contains("\\") || name.unicodeScalars.contains(where: \.isUnprintable) {
            bad = true
        } else {
            let parts = name.split(separator: "/", omittingEmptySubsequences: false)
            // A trailing "/" (a folder entry) leaves one empty last part.
            bad = parts.dropLast(name.hasSuffix("/") ? 1 : 0).contains { $0.isEmpty || $0 == ".." || $0 == "." }
        }
        if bad { throw CheckpointError("zip entry '\(name.escapedForMessage)' is not a plain relative path inside the archive") }
    }
}
