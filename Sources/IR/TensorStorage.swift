#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Bytes that tensors point into: a read-only memory map of a file, or memory we own.
///
/// Weights are mapped, not copied: opening a checkpoint costs O(header), and pages are read
/// only when a kernel touches them. Converted tensors (F16/BF16 -> F32) live in owned memory.
public final class TensorStorage: @unchecked Sendable {
    public let base: UnsafeRawPointer
    public let byteCount: Int
    /// True for a read-only file map: its pages can be dropped and read back from the page
    /// cache at will, which owned memory cannot.
    public let isFileMap: Bool
    private let release: () -> Void

    private init(base: UnsafeRawPointer, byteCount: Int, isFileMap: Bool = false, release: @escaping () -> Void) {
        self.base = base
        self.byteCount = byteCount
        self.isFileMap = isFileMap
        self.release = release
    }

    deinit { release() }

    /// Owned, zero-initialised, 64-byte aligned memory.
    public static func allocate(byteCount: Int) -> (TensorStorage, UnsafeMutableRawPointer) {
        let size = max(byteCount, 1)
        let memory = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        let storage = TensorStorage(base: UnsafeRawPointer(memory), byteCount: byteCount) {
            memory.deallocate()
        }
        return (storage, memory)
    }

    /// Owned copy of a float array.
    public static func copying(_ values: [Float]) -> TensorStorage {
        let (storage, memory) = allocate(byteCount: values.count * 4)
        values.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return storage
    }

    /// Maps a whole file read-only. Errors are returned as text for the caller to wrap.
    public static func map(path: String) throws(MapError) -> TensorStorage {
        // Never blocks on a FIFO; only regular files get this far.
        let file: RegularFile.Opened
        do { file = try RegularFile.open(path) } catch { throw MapError(message: error.reason) }
        let fd = file.descriptor
        defer { close(fd) }
        let size = file.size
        if size == 0 {
            let (storage, _) = allocate(byteCount: 0)
            return storage
        }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else {
            throw MapError(message: "mmap failed: " + String(cString: strerror(errno)))
        }
        return TensorStorage(base: UnsafeRawPointer(address), byteCount: size, isFileMap: true) {
            munmap(address, size)
        }
    }

    /// Maps the file pages under `bytes` in one call, before a bulk read of them. A write(2)
    /// from unmapped pages takes a fault, a failed atomic copy and a retry per fault-around
    /// window, about twice the time of the copy itself. A hint: failures are ignored.
    public func prefault(_ bytes: UnsafeRawBufferPointer) {
        #if os(Linux)
        guard isFileMap, let (start, length) = pageSpan(bytes) else { return }
        _ = madvise(start, length, 22 /* MADV_POPULATE_READ, Linux 5.14+; older kernels say EINVAL */)
        #endif
    }

    /// Unmaps the file pages under `bytes` once they have been read, so a pass over a whole
    /// checkpoint keeps one window resident rather than the file; touching them again reads
    /// them back from the page cache. Does nothing to owned memory, whose contents it would lose.
    public func evict(_ bytes: UnsafeRawBufferPointer) {
        guard isFileMap, let (start, length) = pageSpan(bytes, inner: true) else { return }
        _ = madvise(start, length, MADV_DONTNEED)
    }

    /// Passes `bytes` (inside this storage) to `body` a window at a time, each window's file
    /// pages mapped in one call before `body` reads them and unmapped after it: a pass over a
    /// whole checkpoint (hashing it, writing it out) then keeps one window resident rather
    /// than the file. Owned memory is only split into windows.
    public func forEachWindow<E: Error>(of bytes: UnsafeRawBufferPointer,
                                        _ body: (UnsafeRawBufferPointer) throws(E) -> Void) throws(E) {
        let window = 8 << 20
        var offset = 0
        while offset < bytes.count {
            let part = UnsafeRawBufferPointer(rebasing: bytes[offset..<min(offset + window, bytes.count)])
            prefault(part)
            try body(part)
            evict(part)
            offset += part.count
        }
    }

    /// The whole pages covering `bytes`, or (`inner`) only those entirely inside it, so that a
    /// neighbour's page still in use is never dropped.
    private func pageSpan(_ bytes: UnsafeRawBufferPointer, inner: Bool = false) -> (UnsafeMutableRawPointer, Int)? {
        guard let start = bytes.baseAddress, bytes.count > 0 else { return nil }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lower = Int(bitPattern: start), upper = lower + bytes.count
        let first = inner ? (lower + page - 1) / page * page : lower / page * page
        let last = inner ? upper / page * page : (upper + page - 1) / page * page
        guard first < last else { return nil }
        return (UnsafeMutableRawPointer(bitPattern: first)!, last - first)
    }

    public struct MapError: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// The bytes in `range` as a buffer (no copy).
    public func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
    }
}

/// An immutable Float32 tensor whose elements live in a `TensorStorage`.
public struct FloatTensor: @unchecked Sendable {
    public let shape: [Int]
    public let storage: TensorStorage
    public let pointer: UnsafePointer<Float>

    public init(shape: [Int], storage: TensorStorage, pointer: UnsafePointer<Float>) {
        self.shape = shape
        self.storage = storage
        self.pointer = pointer
    }

    /// An owned tensor holding `values`.
    public init(shape: [Int], values: [Float]) {
        precondition(shape.elementCount == values.count, "shape \(shape) does not hold \(values.count) values")
        let storage = TensorStorage.copying(values)
        self.init(shape: shape, storage: storage, pointer: storage.base.assumingMemoryBound(to: Float.self))
    }

    public var count: Int { shape.elementCount }
    public var buffer: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: pointer, count: count) }
    public var values: [Float] { Array(buffer) }

    /// A view of the contiguous rows `[start, end)` along the first axis (no copy).
    public func rows(_ range: Range<Int>) -> FloatTensor {
        let rowSize = shape.dropFirst().reduce(1, *)
        return FloatTensor(shape: [range.count] + shape.dropFirst(), storage: storage,
                           pointer: pointer + range.lowerBound * rowSize)
    }

    /// The same elements under another shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> FloatTensor {
        precondition(newShape.elementCount == count)
        return FloatTensor(shape: newShape, storage: storage, pointer: pointer)
    }
}

extension FloatTensor {
    /// `parts` concatenated along the first axis into one owned tensor (their trailing shapes
    /// must agree): Hugging Face's q, k and v stacked into a qkv.
    public static func stacking(_ parts: [FloatTensor]) -> FloatTensor {
        precondition(!parts.isEmpty && parts.allSatisfy { $0.shape.dropFirst() == parts[0].shape.dropFirst() })
        let total = parts.reduce(0) { $0 + $1.count }
        let (storage, memory) = TensorStorage.allocate(byteCount: total * 4)
        var offset = 0
        for part in parts {
            (memory + offset * 4).copyMemory(from: part.pointer, byteCount: part.count * 4)
            offset += part.count
        }
        let shape = [parts.reduce(0) { $0 + $1.shape[0] }] + parts[0].shape.dropFirst()
        return FloatTensor(shape: shape, storage: storage, pointer: UnsafePointer(memory.assumingMemoryBound(to: Float.self)))
    }
}
