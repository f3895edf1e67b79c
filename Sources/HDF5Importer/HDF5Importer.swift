#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import IR
import Importers

/// An HDF5 state dict read into a weight set, with what `inspect` shows about the file.
public struct HDF5Import: Sendable {
    public var weights: WeightSet
    public var description: HDF5Description
    public var superblock: HDF5Superblock

    /// Format facts for `inspect`: layout, storage, compression, reader.
    public var details: [(String, String)] {
        var details: [(String, String)] = []
        // Nested when tensors sit in groups below the (stripped) top group; mixed when some
        // of those still carry dotted names (`blocks/0/attn.qkv.weight`).
        let prefix = "/" + (description.topGroup.map { $0 + "/" } ?? "")
        let relative = description.datasets.map { $0.path.dropFirst(prefix.count) }
        let layout: String
        if !relative.contains(where: { $0.contains("/") }) {
            layout = "flat (one dataset per tensor)"
        } else if relative.contains(where: { $0.contains("/") && $0.split(separator: "/").last!.contains(".") }) {
            layout = "mixed flat and nested datasets"
        } else {
            layout = "nested groups (one dataset per tensor)"
        }
        details.append(("HDF5 layout", layout + (description.topGroup.map { ", under top-level group '\($0)'" } ?? "")))
        var storage: [String: Int] = [:]
        for dataset in description.datasets {
            let filters = dataset.filters.isEmpty ? "" : " + " + dataset.filters.joined(separator: " + ")
            storage[dataset.storage + filters, default: 0] += 1
        }
        details.append(("HDF5 storage", storage.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }.joined(separator: ", ")))
        let stored = description.datasets.reduce(0) { $0 + $1.storedBytes }
        let logical = description.datasets.reduce(0) { $0 + $1.logicalBytes }
        details.append(("HDF5 bytes", "\(stored) stored for \(logical) of tensors"))
        details.append(("HDF5 file", "superblock v\(superblock.version), read by \(description.library) in a separate process"))
        if !description.skippedAttributes.isEmpty {
            details.append(("HDF5 skipped", "attributes that are not strings or scalars: " + description.skippedAttributes.joined(separator: ", ")))
        }
        return details
    }
}

public enum HDF5Importer {
    /// Checks the superblock, runs the reader process, and maps what it wrote.
    public static func load(path: String) throws(ImportError) -> HDF5Import {
        let file = displayName(path)
        let superblock = try HDF5Superblock.check(path: path)
        guard let reader = ReaderProcess.locate() else {
            throw .unreadable(file: file, reason: "HDF5 support needs the '\(HDF5ReaderProtocol.executableName)' program next to idlevit (or named by \(HDF5ReaderProtocol.executableVariable)); it was not found")
        }
        let folder = try privateFolder(file: file)
        let output = folder + "/weights.safetensors"
        let errors = folder + "/reader-stderr.txt"
        defer { removeFolder(folder) }

        let limits = ReaderProcess.timeouts(fileSize: superblock.fileSize)
        let process = ReaderProcess(executable: reader, timeoutSeconds: limits.total, structureTimeoutSeconds: limits.structure)
        switch try process.run(input: path, output: output, errorPath: errors) {
        case .finished:
            break
        case .rejected(let dataset?, let rule):
            throw .invalidTensor(file: file, tensor: dataset, rule: rule)
        case .rejected(nil, let rule):
            throw .invalidFile(file: file, format: "HDF5", rule: rule)
        case .cannotWrite(let message):
            throw .unreadable(file: file, reason: "the HDF5 reader could not write its output: \(message)")
        case .exited(let code, let message):
            throw .invalidFile(file: file, format: "HDF5", rule: "the HDF5 reader failed (exit status \(code))" + (message.isEmpty ? "" : ": \(message)"))
        case .crashed(let signal):
            throw .invalidFile(file: file, format: "HDF5", rule: "libhdf5 crashed reading it (signal \(signal)\(signalName(signal))): the file is corrupt")
        case .timedOut(let structure, let seconds):
            let what = structure ? "its structure" : "its data"
            throw .invalidFile(file: file, format: "HDF5", rule: "libhdf5 did not finish reading \(what) within \(Int(seconds)) s and was stopped: the file is corrupt")
        }

        // The mapping outlives the file's name, so the folder can go at once (see defer).
        let converted = try SafetensorsFile(path: output)
        guard let text = converted.metadata[HDF5ReaderProtocol.descriptionKey],
              let json = try? JSONParser.parse(text), let description = HDF5Description(json: json) else {
            throw .invalidFile(file: file, format: "HDF5", rule: "the HDF5 reader's output has no description (reader and idlevit from different builds?)")
        }
        var weights = WeightSet(file: path, format: .hdf5, metadata: metadata(description))
        let entries = Dictionary(converted.entries.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for dataset in description.datasets {
            guard let entry = entries[dataset.name] else {
                throw .invalidTensor(file: file, tensor: dataset.name, rule: "missing from the HDF5 reader's output")
            }
            let tensor = try converted.floatTensor(entry)
            guard tensor.shape == dataset.shape else {
                throw .invalidTensor(file: file, tensor: dataset.name, rule: "the HDF5 reader's output has the wrong shape")
            }
            weights.append(Weight(name: dataset.name, tensor: tensor, sourceType: dataset.sourceType))
        }
        return HDF5Import(weights: weights, description: description, superblock: superblock)
    }

    /// Attributes as weight-set metadata: root attributes under their own names, the top
    /// group's too unless the root already has that name (then `group/name`).
    static func metadata(_ description: HDF5Description) -> [String: String] {
        var metadata: [String: String] = [:]
        for attribute in description.attributes where attribute.owner == "/" { metadata[attribute.name] = attribute.value }
        for attribute in description.attributes where attribute.owner != "/" {
            let key = metadata[attribute.name] == nil ? attribute.name : attribute.owner + "/" + attribute.name
            metadata[key] = attribute.value
        }
        return metadata
    }

    /// A folder only this user can read, for the reader's output.
    static func privateFolder(file: String) throws(ImportError) -> String {
        let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = (base + "/idlevit-hdf5-XXXXXX").utf8CString
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard created != nil else {
            throw .unreadable(file: file, reason: "cannot create a temporary folder in \(base): " + String(cString: strerror(errno)))
        }
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Removes the reader's folder and whatever it left (a crashed reader leaves a partial
    /// temporary file). The folder holds only files the reader made, no subfolders.
    static func removeFolder(_ folder: String) {
        if let directory = opendir(folder) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                if name != "." && name != ".." { unlink(folder + "/" + name) }
            }
            closedir(directory)
        }
        rmdir(folder)
    }

    static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGSEGV: return ", SIGSEGV"
        case SIGABRT: return ", SIGABRT"
        case SIGBUS: return ", SIGBUS"
        case SIGFPE: return ", SIGFPE"
        case SIGILL: return ", SIGILL"
        case SIGTRAP: return ", SIGTRAP"
        case SIGKILL: return ", SIGKILL"
        default: return ""
        }
    }
}
