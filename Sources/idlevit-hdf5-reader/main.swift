// idlevit-hdf5-reader INPUT.h5 OUTPUT.safetensors
//
// The only idlevit program that runs libhdf5. idlevit starts it for every HDF5 file, so a
// crash or hang of libhdf5 on a hostile file ends this process, not idlevit. It lists and
// checks every dataset before reading any, then writes all of them into one safetensors
// file (float16 kept as F16, float32 and float64 as F32) with a description of the file in
// its metadata. Errors: one line on stderr and exit status 3 (see HDF5ReaderProtocol).
#if canImport(Glibc)
import Glibc
#endif
import CHDF5
import HDF5Importer

ProcessLimits.apply()

let arguments = CommandLine.arguments
guard arguments.count == 3 else {
    writeError("usage: \(HDF5ReaderProtocol.executableName) INPUT.h5 OUTPUT.safetensors")
    exit(HDF5ReaderProtocol.exitUsage)
}

do throws(ReaderFailure) {
    let file = try HDF5File(path: arguments[1])
    let description = try file.plan()
    ReaderProgress.markPlanned(output: arguments[2])
    try OutputWriter.write(description, from: file, to: arguments[2])
    file.close()
    exit(0)
} catch {
    writeError(error.line)
    exit(error.exitStatus)
}

/// Limits that keep a hostile file from hurting more than this process.
enum ProcessLimits {
    /// Address space cap: far above any real checkpoint tensor (one is read at a time), far
    /// below what would make the machine swap if libhdf5 tried to allocate a forged size.
    static let addressSpaceBytes: rlim_t = 8 << 30

    static func apply() {
        idlevit_die_with_parent()
        var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
        setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &noCore)
        var memory = rlimit(rlim_cur: addressSpaceBytes, rlim_max: addressSpaceBytes)
        setrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &memory)
        // libhdf5 prints its error stack to stderr by default; the reader reports one line.
        H5Eset_auto2(idlevit_h5e_default(), nil, nil)
        // Filter plugins are shared libraries found through HDF5_PLUGIN_PATH: a file must not
        // be able to make this process load code. Only built-in filters (gzip...) are used.
        H5PLset_loading_state(0)
    }
}

/// One line on stderr, written straight to descriptor 2 (no shared FILE state).
func writeError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

enum ReaderProgress {
    /// Tells idlevit the structure walk is over (HDF5ReaderProtocol.plannedSuffix).
    static func markPlanned(output: String) {
        let descriptor = open(output + HDF5ReaderProtocol.plannedSuffix, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        if descriptor >= 0 { close(descriptor) }
    }
}
