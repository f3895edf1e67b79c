import IR
import Importers

/// The part of an HDF5 superblock idlevit checks itself before any libhdf5 code sees the
/// file: the signature, the version, field sizes, and the end-of-file address against the
/// real file size (which catches truncated files with a precise message).
public struct HDF5Superblock: Sendable, Equatable {
    public static let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Where the superblock starts (0, or after a user block of 512, 1024, 2048... bytes).
    public var offset: Int
    public var version: Int
    public var offsetSize: Int
    public var lengthSize: Int
    /// The end-of-file address recorded when the file was written.
    public var recordedEnd: UInt64
    public var fileSize: Int

    /// Reads and checks the superblock of the file at `path`.
    public static func check(path: String) throws(ImportError) -> HDF5Superblock {
        let file = displayName(path)
        let storage: TensorStorage
        do { storage = try TensorStorage.map(path: path) } catch { throw .unreadable(file: file, reason: error.message) }
        let bytes = storage.bytes(0..<storage.byteCount)
        guard let offset = signatureOffset(in: bytes) else {
            throw .invalidFile(file: file, format: "HDF5", rule: "no HDF5 signature at byte 0 or after a user block")
        }
        return try parse(bytes, file: file, offset: offset)
    }

    /// Where the signature is, searched where libhdf5 searches: 0 and powers of two from 512.
    public static func signatureOffset(in bytes: UnsafeRawBufferPointer) -> Int? {
        var offset = 0
        while offset + 8 <= bytes.count {
            if bytes[offset..<offset + 8].elementsEqual(signature) { return offset }
            offset = offset == 0 ? 512 : offset * 2
        }
        return nil
    }

    static func parse(_ bytes: UnsafeRawBufferPointer, file: String, offset: Int) throws(ImportError) -> HDF5Superblock {
        func invalid(_ rule: String) -> ImportError { .invalidFile(file: file, format: "HDF5", rule: rule) }
        let fileSize = bytes.count
        // The largest fixed part we read: version 0/1 with 8-byte addresses, up to the root entry.
        let head = Array(bytes[offset..<min(offset + 96, fileSize)])
        guard head.count > 15 else {
            throw invalid("the file ends inside the superblock (\(fileSize) bytes): it is truncated")
        }
        let version = Int(head[8])
        let offsetSize: Int
        let lengthSize: Int
        let addressesStart: Int
        let endAddressIndex: Int
        // The fixed fields read below: up to the B-tree K values (byte 19) for versions 0 and
        // 1, the field sizes (byte 10) for 2 and 3. A file cut inside them is truncated.
        let fixedEnd = version <= 1 ? 20 : 11
        guard head.count >= fixedEnd else {
            throw invalid("the file ends inside the superblock (\(fileSize) bytes): it is truncated")
        }
        switch version {
        case 0, 1:
            offsetSize = Int(head[13])
            lengthSize = Int(head[14])
            // Base, free-space, end-of-file, driver addresses follow the fixed fields.
            addressesStart = version == 0 ? 24 : 28
            endAddressIndex = 2
            let leafK = Int(head[16]) | Int(head[17]) << 8
            let internalK = Int(head[18]) | Int(head[19]) << 8
            guard leafK > 0, internalK > 0 else {
                throw invalid("superblock B-tree parameters are zero (leaf \(leafK), internal \(internalK)): the superblock is damaged")
            }
        case 2, 3:
            offsetSize = Int(head[9])
            lengthSize = Int(head[10])
            // Base, extension, end-of-file, root object header addresses.
            addressesStart = 12
            endAddressIndex = 2
        default:
            throw invalid("superblock version \(version) is not one libhdf5 1.10 reads (0 to 3): the file is damaged or from a newer HDF5")
        }
        guard [2, 4, 8].contains(offsetSize), [2, 4, 8].contains(lengthSize) else {
            throw invalid("superblock field sizes (addresses \(offsetSize), lengths \(lengthSize) bytes) are not 2, 4 or 8: the superblock is damaged")
        }
        let needed = addressesStart + 4 * offsetSize
        guard head.count >= needed else {
            throw invalid("the file ends inside the superblock (\(fileSize) bytes): it is truncated")
        }
        func address(_ index: Int) -> UInt64 {
            var value: UInt64 = 0
            for byte in 0..<offsetSize { value |= UInt64(head[addressesStart + index * offsetSize + byte]) << (8 * UInt64(byte)) }
            return value
        }
        let undefined: UInt64 = offsetSize == 8 ? .max : (1 << (8 * UInt64(offsetSize))) - 1
        let base = address(0)
        let recordedEnd = address(endAddressIndex)
        guard base == UInt64(offset) || base == 0 else {
            throw invalid("superblock base address \(base) does not match where the superblock is (\(offset)): the superblock is damaged")
        }
        guard recordedEnd != undefined, recordedEnd > UInt64(offset + needed) else {
            throw invalid("superblock end-of-file address \(recordedEnd == undefined ? "is undefined" : "\(recordedEnd) is too small"): the superblock is damaged")
        }
        // libhdf5 compares the stored end address with the file size the same way.
        guard recordedEnd <= UInt64(fileSize) else {
            throw invalid("the file is truncated: its superblock records \(recordedEnd) bytes but only \(fileSize) are present")
        }
        return HDF5Superblock(offset: offset, version: version, offsetSize: offsetSize, lengthSize: lengthSize,
                              recordedEnd: recordedEnd, fileSize: fileSize)
    }
}
