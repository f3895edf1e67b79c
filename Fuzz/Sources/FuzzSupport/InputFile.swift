#if canImport(Glibc)
import Glibc
#endif
import CFuzzDriver

/// Runs libFuzzer on `callback` with the process's command line (every target's main.swift
/// ends with this); never returns.
public func runFuzzer(_ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
    exit(idlevit_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv, callback))
}

/// The fuzz input as a file: idlevit's importers read paths (they map files, check they are
/// regular, look next to them for config.json), so each input is written to one file in a
/// private folder in /dev/shm (memory, not disk) and read back through the normal path.
public enum FuzzInput {
    nonisolated(unsafe) private static var folder: String = {
        var template = Array("/dev/shm/idlevit-fuzz-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            fatalError("cannot create a folder in /dev/shm")
        }
        return String(cString: made)
    }()

    /// Writes `size` bytes at `data` to `<folder>/<name>` and returns the path.
    public static func write(_ data: UnsafePointer<UInt8>?, _ size: Int, name: String) -> String {
        let path = folder + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { fatalError("cannot write \(path)") }
        var done = 0
        while done < size, let data {
            let n = Glibc.write(fd, data + done, size - done)
            guard n > 0 else { fatalError("cannot write \(path)") }
            done += n
        }
        close(fd)
        return path
    }

    /// The input as a byte array (for parsers that take bytes).
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
        guard let data, size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: size))
    }
}
