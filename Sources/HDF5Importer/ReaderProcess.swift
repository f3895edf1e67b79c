#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Importers

/// Runs `idlevit-hdf5-reader` on one file. libhdf5 has crashed and hung on corrupt files
/// many times, so it only ever runs in this child process: a signal or a timeout there
/// becomes an `ImportError` here, and idlevit itself never executes libhdf5 code.
struct ReaderProcess {
    var executable: String
    var timeoutSeconds: Double

    enum Outcome {
        case finished
        /// The reader refused the file and said why on stderr.
        case rejected(dataset: String?, rule: String)
        case cannotWrite(String)
        case exited(Int32, String)
        case crashed(signal: Int32)
        case timedOut
    }

    /// Runs the reader with `input` and `output`, its stderr going to `errorPath`.
    func run(input: String, output: String, errorPath: String) throws(ImportError) -> Outcome {
        let file = displayName(input)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)

        // A small, fixed environment: no HDF5_* variable from the user's shell can change how
        // libhdf5 opens the file (plugin paths, drivers). File locking is off because the
        // reader only reads and locks fail on some read-only mounts.
        var environment = ["HDF5_USE_FILE_LOCKING=FALSE"]
        if let libraryPath = getenv("LD_LIBRARY_PATH") { environment.append("LD_LIBRARY_PATH=" + String(cString: libraryPath)) }
        let arguments = [executable, input, output]
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid = pid_t()
        let status = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard status == 0 else {
            throw .unreadable(file: file, reason: "cannot start the HDF5 reader '\(executable)': " + String(cString: strerror(status)))
        }
        guard let waitStatus = wait(for: pid) else { return .timedOut }
        let signal = waitStatus & 0x7f
        if signal != 0 { return .crashed(signal: signal) }
        let code = (waitStatus >> 8) & 0xff
        let message = Self.firstLine(of: errorPath)
        switch code {
        case 0: return .finished
        case HDF5ReaderProtocol.exitRejected:
            let fields = message.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            if fields.count == 3, fields[0] == "dataset" { return .rejected(dataset: fields[1], rule: fields[2]) }
            if fields.count == 2, fields[0] == "file" { return .rejected(dataset: nil, rule: fields[1]) }
            return .rejected(dataset: nil, rule: message.isEmpty ? "rejected without a reason" : message)
        case HDF5ReaderProtocol.exitCannotWrite: return .cannotWrite(message)
        default: return .exited(code, message)
        }
    }

    /// Waits for the child, polling so the deadline holds even if it never exits; kills it
    /// at the deadline. Returns the wait status, or nil on timeout.
    private func wait(for pid: pid_t) -> Int32? {
        let deadline = Self.now() + timeoutSeconds
        var pause = 0.001
        while true {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { return status }
            if result < 0 && errno != EINTR { return 0x7f }  // lost the child: report as crashed
            if Self.now() >= deadline {
                kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                return nil
            }
            var interval = timespec(tv_sec: 0, tv_nsec: Int(pause * 1e9))
            nanosleep(&interval, nil)
            pause = min(pause * 2, 0.02)
        }
    }

    private static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }

    /// The first line of a small text file (the reader's stderr), at most 2 KB.
    static func firstLine(of path: String) -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 2048)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 2048) }
        guard count > 0 else { return "" }
        let text = String(decoding: buffer.prefix(count), as: UTF8.self)
        return String(text.split(separator: "\n", omittingEmptySubsequences: true).first ?? "")
    }

    /// The reader next to the running program (in `swift test`, the test bundle sits in the
    /// build products folder with it), or the one `IDLEVIT_HDF5_READER` names.
    static func locate() -> String? {
        if let explicit = getenv(HDF5ReaderProtocol.executableVariable) {
            let path = String(cString: explicit)
            return access(path, X_OK) == 0 ? path : nil
        }
        var folders: [String] = []
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = buffer.withUnsafeMutableBufferPointer { readlink("/proc/self/exe", $0.baseAddress!, Int(PATH_MAX)) }
        if length > 0 {
            let executable = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            folders.append(Self.folder(of: executable))
        }
        if let first = CommandLine.arguments.first, first.contains("/") { folders.append(Self.folder(of: first)) }
        for folder in folders {
            let candidate = folder + "/" + HDF5ReaderProtocol.executableName
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Time limit: generous for the size (gzip of a DeiT-B takes a few seconds), overridable.
    static func timeout(fileSize: Int) -> Double {
        if let text = getenv(HDF5ReaderProtocol.timeoutVariable), let value = Double(String(cString: text)), value > 0 {
            return value
        }
        return 30 + Double(fileSize) / 4_000_000
    }
}
