#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import IR
import Importers

/// External tensor data (`data_location == EXTERNAL`): files next to the model, named by the
/// tensor's `location` entry. A model file is untrusted input, so a location may only name a
/// file inside the model's folder: absolute paths, `..` components and symlinks that resolve
/// outside the folder are refused, and `offset` + `length` must lie inside the file. Files
/// are mapped, not read, and each is mapped once however many tensors it holds.
final class ExternalDataFiles {
    private let file: String
    private let modelPath: String
    private var folder: String?
    private var maps: [String: TensorStorage] = [:]

    init(modelPath: String) {
        self.modelPath = modelPath
        self.file = displayName(modelPath)
    }

    struct Located {
        var bytes: UnsafeRawBufferPointer
        var storage: TensorStorage
        var location: String
    }

    /// The `byteCount` bytes an external tensor's entries point at.
    func locate(tensor: String, entries: [String: String], byteCount: Int) throws(ImportError) -> Located {
        func fail(_ rule: String) -> ImportError { .invalidTensor(file: file, tensor: tensor, rule: rule) }
        guard let location = entries["location"], !location.isEmpty else { throw fail("is stored externally but has no 'location'") }
        guard !location.hasPrefix("/") else { throw fail("external data location '\(location)' is an absolute path") }
        let components = location.split(whereSeparator: { $0 == "/" || $0 == "\\" })
        guard !components.contains("..") else { throw fail("external data location '\(location)' leaves the model's folder ('..')") }

        let folder = try modelFolder()
        guard let resolved = realPath(folder + "/" + location) else {
            throw fail("external data file '\(location)' cannot be opened: \(String(cString: strerror(errno)))")
        }
        guard resolved.hasPrefix(folder + "/") else {
            throw fail("external data location '\(location)' resolves to '\(resolved)', outside the model's folder")
        }
        let storage: TensorStorage
        if let cached = maps[resolved] {
            storage = cached
        } else {
            do { storage = try TensorStorage.map(path: resolved) } catch {
                throw fail("external data file '\(location)' cannot be mapped: \(error.message)")
            }
            maps[resolved] = storage
        }

        let offset = try number(entries["offset"], key: "offset", default: 0, fail: fail)
        guard offset <= storage.byteCount else {
            throw fail("external data offset \(offset) is past the end of '\(location)' (\(storage.byteCount) bytes)")
        }
        let length = try number(entries["length"], key: "length", default: storage.byteCount - offset, fail: fail)
        guard length == byteCount else {
            throw fail("external data length \(length) but the tensor's dims need \(byteCount) bytes")
        }
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= storage.byteCount else {
            throw fail("external data bytes [\(offset), \(offset) + \(length)) run past the end of '\(location)' (\(storage.byteCount) bytes)")
        }
        return Located(bytes: storage.bytes(offset..<end), storage: storage, location: location)
    }

    /// The real path of the folder holding the model (symlinks resolved once, so that the
    /// prefix test above compares like with like).
    private func modelFolder() throws(ImportError) -> String {
        if let folder { return folder }
        let parent: String
        if let slash = modelPath.lastIndex(of: "/") {
            parent = slash == modelPath.startIndex ? "/" : String(modelPath[..<slash])
        } else {
            parent = "."
        }
        guard let real = realPath(parent) else {
            throw .unreadable(file: file, reason: "cannot resolve the model's folder: \(String(cString: strerror(errno)))")
        }
        let trimmed = real == "/" ? "" : real
        folder = trimmed
        return trimmed
    }

    private func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// A non-negative decimal entry; anything else is refused rather than guessed at.
    private func number(_ text: String?, key: String, default value: Int,
                        fail: (String) -> ImportError) throws(ImportError) -> Int {
        guard let text else { return value }
        guard !text.isEmpty, text.utf8.count <= 19, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let number = Int(text) else {
            throw fail("external data \(key) '\(text)' is not a non-negative integer")
        }
        return number
    }
}
