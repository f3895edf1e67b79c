#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import IR

/// Writes an output file so that readers only ever see the whole thing or nothing: the
/// bytes go to a temporary file in the destination's folder, which is fsynced and renamed
/// over the destination at `commit()`. Dropping it uncommitted (an error, Ctrl-C through
/// `AtomicFile.removeAllPending()`) deletes the temporary file.
public final class AtomicFile {
    public let destination: String
    public let temporaryPath: String
    private var descriptor: Int32
    private var committed = false
    /// Bytes appended so far, and how many of them have been handed to writeback.
    private var appended = 0
    private var writebackStarted = 0
    /// Writeback is started every this many bytes, so the disk works while later tensors are
    /// still being copied and `commit()`'s fsync finds little left to do.
    private static let writebackStride = 16 << 20

    /// This file's slot in the table the signal handler reads (`PendingTemporaryFiles`).
    private var pendingSlot: Int?

    public init(destination: String) throws(ExportError) {
        self.destination = destination
        let folder = destination.contains("/") ? String(destination[..<destination.lastIndex(of: "/")!]) : "."
        let base = destination.split(separator: "/").last.map(String.init) ?? destination
        var template = ((folder.isEmpty ? "/" : folder + "/") + "." + base + ".tmp-XXXXXX").utf8CString
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw .cannotWrite(file: destination, reason: "cannot create a temporary file in '\(folder.escapedForMessage)': " + String(cString: strerror(errno)))
        }
        descriptor = fd
        temporaryPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        fchmod(fd, 0o644)
        pendingSlot = PendingTemporaryFiles.register(temporaryPath)
    }

    deinit {
        if !committed { abandon() }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(ExportError) {
        try writeAll(bytes, at: nil)
        appended += bytes.count
        if appended - writebackStarted >= AtomicFile.writebackStride { startWriteback() }
    }

    /// Asks the kernel to start writing the pages appended since the last call, without
    /// waiting for them: a hint only, so a failure here is left for fsync to report. On Linux
    /// POSIX_FADV_DONTNEED starts that writeback (WB_SYNC_NONE) and drops what is already
    /// clean: sync_file_range would say it more exactly but is not visible from Swift.
    private func startWriteback() {
        #if os(Linux)
        _ = posix_fadvise(descriptor, off_t(writebackStarted), off_t(appended - writebackStarted), POSIX_FADV_DONTNEED)
        #endif
        writebackStarted = appended
    }

    public func write(_ bytes: [UInt8]) throws(ExportError) {
        // Array.withUnsafeBytes rethrows untyped errors: the typed one travels in a Result.
        try bytes.withUnsafeBytes { buffer in Result { () throws(ExportError) in try write(buffer) } }.get()
    }

    /// Overwrites bytes already written (a header whose values were settled after the data).
    public func write(_ bytes: [UInt8], at offset: Int) throws(ExportError) {
        try bytes.withUnsafeBytes { buffer in Result { () throws(ExportError) in try writeAll(buffer, at: offset) } }.get()
    }

    /// Writes all of `bytes`, appended (`offset` nil) or at `offset`, through short writes and
    /// EINTR; any other failure abandons the file.
    private func writeAll(_ bytes: UnsafeRawBufferPointer, at offset: Int?) throws(ExportError) {
        var done = 0
        while done < bytes.count {
            let start = bytes.baseAddress! + done, count = bytes.count - done
            let written = if let offset { pwrite(descriptor, start, count, off_t(offset + done)) } else { Glibc.write(descriptor, start, count) }
            if written < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                abandon()
                throw .cannotWrite(file: destination, reason: reason)
            }
            done += written
        }
    }

    /// Flushes and renames into place.
    public func commit() throws(ExportError) {
        guard fsync(descriptor) == 0 else {
            let reason = String(cString: strerror(errno))
            abandon()
            throw .cannotWrite(file: destination, reason: "fsync: " + reason)
        }
        close(descriptor)
        descriptor = -1
        guard rename(temporaryPath, destination) == 0 else {
            let reason = String(cString: strerror(errno))
            abandon()
            throw .cannotWrite(file: destination, reason: "rename: " + reason)
        }
        committed = true
        forgetPending()
    }

    private func abandon() {
        if descriptor >= 0 { close(descriptor); descriptor = -1 }
        unlink(temporaryPath)
        forgetPending()
    }

    private func forgetPending() {
        if let slot = pendingSlot { PendingTemporaryFiles.unregister(slot) }
        pendingSlot = nil
    }

    /// Allocates what `removeAllPending` uses; call it before installing a signal handler.
    public static func prepareForSignals() { PendingTemporaryFiles.prepare() }

    /// Removes every uncommitted temporary file. Async-signal-safe (no locks, no allocation):
    /// the SIGINT/SIGTERM handler calls it.
    public static func removeAllPending() { PendingTemporaryFiles.removeAll() }
}

/// Why an output could not be written.
public enum ExportError: Error, CustomStringConvertible {
    case cannotWrite(file: String, reason: String)
    case invalidRequest(String)

    public var description: String {
        switch self {
        case .cannotWrite(let file, let reason): return "\(file.escapedForMessage): cannot write: \(reason)"
        case .invalidRequest(let message): return message
        }
    }
}
