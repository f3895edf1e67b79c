#if canImport(Glibc)
import Glibc
#endif
import CHDF5
import HDF5Importer

/// Why the reader stops: the file is rejected (exit 3) or the output cannot be written (4).
enum ReaderFailure: Error {
    case rejected(dataset: String?, rule: String)
    case cannotWrite(String)

    var line: String {
        switch self {
        case .rejected(let dataset, let rule): return HDF5ReaderProtocol.rejectionLine(dataset: dataset, rule: rule)
        case .cannotWrite(let reason): return reason
        }
    }

    var exitStatus: Int32 {
        switch self {
        case .rejected: return HDF5ReaderProtocol.exitRejected
        case .cannotWrite: return HDF5ReaderProtocol.exitCannotWrite
        }
    }

    /// A rejection carrying libhdf5's own explanation of the call that just failed.
    static func library(_ what: String, dataset: String? = nil) -> ReaderFailure {
        let description = LibraryErrors.latest()
        var rule = what + " (libhdf5: " + description + ")"
        // h5py with libver='latest' writes HDF5 2.0 structures older libraries reject this way.
        if description.contains("bad version number") {
            rule += "; if the file is not damaged it uses a newer HDF5 format than \(HDF5File.libraryVersion()) reads: write it with h5py's default libver"
        }
        return .rejected(dataset: dataset, rule: rule)
    }
}

/// libhdf5's error stack as one line. Its automatic printing is off (ProcessLimits), so the
/// stack is walked here after a failed call.
enum LibraryErrors {
    /// The innermost description on the stack, which names the actual problem ("truncated
    /// file", "inflate() failed"); outer entries only say which API call failed.
    static func latest() -> String {
        var descriptions: [String] = []
        withUnsafeMutablePointer(to: &descriptions) { pointer in
            _ = H5Ewalk2(idlevit_h5e_default(), H5E_WALK_DOWNWARD, { _, entry, context in
                guard let entry, let context else { return 0 }
                let list = context.assumingMemoryBound(to: [String].self)
                if let text = entry.pointee.desc {
                    let description = String(cString: text)
                    if !description.isEmpty { list.pointee.append(description) }
                }
                return 0
            }, pointer)
        }
        H5Eclear2(idlevit_h5e_default())
        guard let innermost = descriptions.last else { return "no description" }
        let trimmed = String(innermost.map { $0 == "\n" ? " " : $0 })
        return trimmed.count > 300 ? String(trimmed.prefix(300)) + "..." : trimmed
    }
}
