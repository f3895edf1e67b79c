import CSHA256
import IR

/// SHA-256 (FIPS 180-4), incremental: feed bytes with `update`, read the digest with
/// `finalize`. Written here rather than linked in so the tool needs no crypto library for one
/// provenance field; it is checked against the FIPS example vectors in the tests.
///
/// Whole blocks go through the CPU's SHA instructions when it has them (~1.8 GB/s, several
/// times the portable code, which made hashing the source most of a bundle `convert`), else
/// through portable C; both kernels are in Sources/CSHA256.
public struct SHA256: Sendable {
    /// How blocks are compressed. Both give the same digest; tests compare them.
    public enum Kernel: Sendable, CaseIterable {
        /// FIPS 180-4 in portable C, any CPU.
        case portable
        /// x86 SHA extensions (Sources/CSHA256), only where `hardwareAvailable`.
        case hardware
    }

    /// Whether this CPU has the SHA extensions (checked once with CPUID).
    public static let hardwareAvailable = idlevit_sha256_hardware_available() != 0

    private let kernel: Kernel
    private var state: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) =
        (0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19)
    /// Bytes of an incomplete block carried between `update` calls.
    private var pending: [UInt8] = []
    private var totalBytes: UInt64 = 0

    /// `kernel` defaults to the fastest this CPU has; asking for `.hardware` on a CPU
    /// without it is a programming error.
    public init(kernel: Kernel = SHA256.hardwareAvailable ? .hardware : .portable) {
        precondition(kernel == .portable || SHA256.hardwareAvailable, "SHA256: this CPU has no SHA extensions")
        self.kernel = kernel
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        totalBytes &+= UInt64(bytes.count)
        var offset = 0
        if !pending.isEmpty {
            let take = min(64 - pending.count, bytes.count)
            pending.append(contentsOf: UnsafeRawBufferPointer(start: base, count: take))
            offset = take
            guard pending.count == 64 else { return }
            pending.withUnsafeBytes { compress(blocks: $0.baseAddress!, count: 1) }
            pending.removeAll(keepingCapacity: true)
        }
        let wholeBlocks = (bytes.count - offset) / 64
        if wholeBlocks > 0 {
            compress(blocks: base + offset, count: wholeBlocks)
            offset += wholeBlocks * 64
        }
        if offset < bytes.count {
            pending.append(contentsOf: UnsafeRawBufferPointer(start: base + offset, count: bytes.count - offset))
        }
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The 32-byte digest. Padding: 0x80, zeros to 56 mod 64, then the bit length big-endian.
    public mutating func finalize() -> [UInt8] {
        let bitLength = totalBytes &* 8
        var tail = pending
        tail.append(0x80)
        while tail.count % 64 != 56 { tail.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) { tail.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
        tail.withUnsafeBytes { compress(blocks: $0.baseAddress!, count: tail.count / 64) }
        pending.removeAll()
        let words = [state.0, state.1, state.2, state.3, state.4, state.5, state.6, state.7]
        return words.flatMap { word in [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: word >> UInt32($0)) } }
    }

    /// Lower-case hex of a digest.
    public static func hex(_ digest: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(digest.count * 2)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func hex(of bytes: [UInt8]) -> String {
        var hasher = SHA256()
        hasher.update(bytes)
        return hex(hasher.finalize())
    }

    /// Hashes a whole file through a read-only memory map, a window at a time. Each window is
    /// evicted once hashed, so hashing a 346 MB checkpoint adds only one window to the
    /// resident set instead of the whole file.
    public static func hex(ofFileAt path: String) throws(TensorStorage.MapError) -> String {
        let storage = try TensorStorage.map(path: path)
        var hasher = SHA256()
        storage.forEachWindow(of: storage.bytes(0..<storage.byteCount)) { hasher.update($0) }
        return hex(hasher.finalize())
    }

    /// Runs `count` 64-byte blocks through the chosen kernel (Sources/CSHA256).
    private mutating func compress(blocks: UnsafeRawPointer, count: Int) {
        let kernel = self.kernel
        withUnsafeMutableBytes(of: &state) { words in
            let state = words.baseAddress!.assumingMemoryBound(to: UInt32.self)
            let data = blocks.assumingMemoryBound(to: UInt8.self)
            switch kernel {
            case .hardware: idlevit_sha256_hardware_compress(state, data, count)
            case .portable: idlevit_sha256_portable_compress(state, data, count)
            }
        }
    }
}
