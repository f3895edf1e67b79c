#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Importers
import IR

/// Runs `idlevit-hdf5-reader` on one file. libhdf5 has crashed and hung on corrupt files
/// many times, so it only ever runs in this child process: a signal or a timeout there
/// becomes an `ImportError` here, and idlevit itself never executes libhdf5 code.
struct ReaderProcess {
    var executable: String
    /// Limit for the whole run, data included.
    var timeoutSeconds: Double
    /// Limit for walking the file's structure, which takes milliseconds on real files; the
    /// libhdf5 hangs seen on corrupt files (looping over a damaged heap) happen there.
    var structureTimeoutSeconds: Double

    enum Outcome {
        case finished
        /// The reader refused the file and said why on stderr.
        case rejected(dataset: String?, rule: String)
        case cannotWrite(String)
        case exited(Int32, String)
        case crashed(signal: Int32)
        /// Stopped at a deadline; `structure` when it had not finished listing the datasets.
        case timedOut(structure: Bool, seconds: Double)
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
        // reader only reads and locks fail on some read-only mounts. Swift's crash backtracer
        // is off: a libhdf5 crash is expected here and reported by idlevit in one line.
        var environment = ["HDF5_USE_FILE_LOCKING=FALSE", "SWIFT_BACKTRACE=enable=no"]
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
        let waitStatus: Int32
        switch wait(for: pid, plannedMarker: output + HDF5ReaderProtocol.plannedSuffix) {
        case .exited(let status): waitStatus = status
        case .killed(let structure, let seconds): return .timedOut(structure: structure, seconds: seconds)
        }
        let signal = waitStatus & 0x7f
        if signal != 0 { return .crashed(signal: signal) }
        let code = (waitStatus >> 8) & 0xff
        let message = Self.firstLine(of: errorPath)
        switch code {
        case 0: return .finished
        case HDF5ReaderProtocol.exitRejected:
            // The reader escaped the fields of its rejection line (HDF5ReaderProtocol.rejectionLine);
            // anything else it printed is escaped here, once.
            let fields = message.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            if fields.count == 3, fields[0] == "dataset" { return .rejected(dataset: fields[1], rule: fields[2]) }
            if fields.count == 2, fields[0] == "file" { return .rejected(dataset: nil, rule: fields[1]) }
            return .rejected(dataset: nil, rule: message.isEmpty ? "rejected without a reason" : message.escapedForMessage)
        case HDF5ReaderProtocol.exitCannotWrite: return .cannotWrite(message.escapedForMessage)
        default: return .exited(code, message.escapedForMessage)
        }
    }

    private enum Waited {
        case exited(Int32)
        case killed(structure: Bool, seconds: Double)
    }

    /// Waits for the child, polling so the deadlines hold even if it never exits, and kills
    /// it at a deadline: the structure deadline until the reader has made its marker file
    /// (datasets listed and checked), the overall one after.
    private func wait(for pid: pid_t, plannedMarker: String) -> Waited {
        let start = Timing.monotonic
        var planned = false
        var pause = 0.001
        while true {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { return .exited(status) }
            if result < 0 && errno != EINTR { return .exited(0x7f) }  // lost the child: report as crashed
            if !planned { planned = access(plannedMarker, F_OK) == 0 }
            let limit = planned ? timeoutSeconds : min(structureTimeoutSeconds, timeoutSeconds)
            if Timing.monotonic - start >= limit {
                kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                return .killed(structure: !planned, seconds: limit)
            }
            var interval = timespec(tv_sec: 0, tv_nsec: Int(pause * 1e9))
            nanosleep(&interval, nil)
            pause = min(pause * 2, 0.02)
        }
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

    /// Time limit: generous for the size (gzip of a DeiT-B takes a few seconds, more on a
    /// busy machine), overridable; the structure limit is the smaller of it and 4 s.
    static func timeouts(fileSize: Int) -> (total: Double, structure: Double) {
        if let text = getenv(HDF5ReaderProtocol.timeoutVariable), let value = Double(String(cString: text)), value > 0 {
            return (value, min(value, 4))
        }
        // A hostile file may make libhdf5 loop: nothing may take longer than 10 s unless the
        // file is large enough to need it (20 MB/s is far below what the reader sustains).
        return (8 + Double(fileSize) / 20_000_000, 4)
    }
}
