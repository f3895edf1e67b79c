#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
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
        let window = 8 << 20
        var offset = 0
        while offset < storage.byteCount {
            let part = storage.bytes(offset..<min(offset + window, storage.byteCount))
            storage.prefault(part)
            hasher.update(part)
            storage.evict(part)
            offset += part.count
        }
        return hex(hasher.finalize())
    }

    /// The first 32 bits of the fractional parts of the cube roots of the first 64 primes.
    private static let roundConstants: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    @inline(__always)
    private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 &- n)) }

    /// One round (FIPS 180-4 6.2.2 step 3) with the shift of the working variables left to
    /// the caller's argument order: d += T1 and h = T1 + T2.
    @inline(__always)
    private static func round(_ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: inout UInt32,
                              _ e: UInt32, _ f: UInt32, _ g: UInt32, _ h: inout UInt32, _ constantPlusWord: UInt32) {
        let t1 = h &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ (g ^ (e & (f ^ g))) &+ constantPlusWord
        let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) | (c & (a | b)))
        d &+= t1
        h = t1 &+ t2
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
