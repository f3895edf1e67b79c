import IR

/// A checkpoint's pickle run to its object, with every storage located in the file.
struct UnpickledCheckpoint: Sendable {
    var root: PickleValue
    var heap: PickleHeap
    /// What `inspect` says about the container ("zip, folder 'archive'").
    var layout: String
}

/// The two layouts `torch.save` has written: a zip archive (torch >= 1.6) and a stream of
/// pickles followed by raw storages (torch < 1.6, or `_use_new_zipfile_serialization=False`).
enum TorchLayouts {
    /// Bytes a file starts with: "PK\x03\x04" (zip), or the pickle of the legacy magic number:
    /// PROTO 2-5, then LONG1 (protocols 2, 3) or FRAME (4, 5). A safetensors header length
    /// of 640 bytes also starts 0x80 0x02, but continues with zeros.
    static func looksLikeZip(_ head: some Collection<UInt8>) -> Bool {
        head.starts(with: [0x50, 0x4B, 0x03, 0x04])
    }

    static func looksLikeLegacy(_ head: some Collection<UInt8>) -> Bool {
        let bytes = Array(head.prefix(3))
        return bytes.count == 3 && bytes[0] == 0x80 && (2...5).contains(bytes[1]) && (bytes[2] == 0x8A || bytes[2] == 0x95)
    }

    static func read(_ file: UnsafeRawBufferPointer) throws(CheckpointError) -> UnpickledCheckpoint {
        if looksLikeZip(file.prefix(4)) { return try zip(file) }
        if looksLikeLegacy(file.prefix(3)) { return try legacy(file) }
        throw CheckpointError("neither a torch.save zip archive nor a legacy torch.save stream")
    }

    // MARK: - Zip (torch >= 1.6)

    /// `<folder>/data.pkl`, `<folder>/data/<key>` per storage, `<folder>/byteorder`,
    /// `<folder>/version`, ...; the folder is named after the file it was saved as.
    static func zip(_ file: UnsafeRawBufferPointer) throws(CheckpointError) -> UnpickledCheckpoint {
        let entries = try ZipDirectory.read(file)
        let pickles = entries.filter { $0.name.hasSuffix("/data.pkl") && $0.name.split(separator: "/").count == 2 }
        guard pickles.count == 1, let pickle = pickles.first else {
            if entries.contains(where: { $0.name.hasSuffix("/constants.pkl") || $0.name.contains("/code/") }) {
                throw CheckpointError("a TorchScript archive (torch.jit.save): load it in Python and save its state_dict() with torch.save")
            }
            throw CheckpointError(pickles.isEmpty ? "a zip archive without <folder>/data.pkl: not a torch.save file"
                                                  : "a zip archive with \(pickles.count) data.pkl files")
        }
        let folder = String(pickle.name.dropLast("data.pkl".count))
        var byName: [String: ZipEntry] = [:]
        for entry in entries {
            // Nothing outside the archive's folder is read, and the archive is refused for it.
            guard entry.name.hasPrefix(folder) else {
                throw CheckpointError("zip entry '\(entry.name.escapedForMessage)' is outside the archive's folder '\(folder.dropLast().description.escapedForMessage)'")
            }
            byName[entry.name] = entry
        }
        if byName[folder + "constants.pkl"] != nil || entries.contains(where: { $0.name.hasPrefix(folder + "code/") }) {
            throw CheckpointError("a TorchScript archive (torch.jit.save): load it in Python and save its state_dict() with torch.save")
        }
        if let order = byName[folder + "byteorder"] {
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: file[order.data.prefix(16)]), as: UTF8.self)
            switch text.trimmingSpaces.trimmingCharacters("\n") {
            case "little": break
            case "big": throw CheckpointError("saved on a big-endian machine (byteorder 'big'); idlevit reads little-endian checkpoints: load and save it again on a little-endian machine")
            default: throw CheckpointError("byteorder record '\(String(text.prefix(16)).escapedForMessage)' is neither 'little' nor 'big'")
            }
        }
        guard pickle.data.count <= TorchLimits.pickleBytes.maximum else {
            throw CheckpointError("data.pkl is \(pickle.data.count) bytes, over the limit of \(TorchLimits.pickleBytes.maximum)")
        }
        let pickleBytes = UnsafeRawBufferPointer(rebasing: file[pickle.data])
        var machine = PickleMachine(bytes: pickleBytes) { (key: String, byteCount: Int) throws(PickleError) -> Range<Int>? in
            guard let entry = byName[folder + "data/" + key] else {
                throw PickleError("storage '\(key.escapedForMessage)' has no entry \(folder.escapedForMessage)data/\(key.escapedForMessage) in the archive")
            }
            guard entry.data.count == byteCount else {
                throw PickleError("storage '\(key.escapedForMessage)' is declared as \(byteCount) bytes, its zip entry holds \(entry.data.count)")
            }
            return entry.data
        }
        let root: PickleValue
        do { root = try machine.run() } catch { throw CheckpointError(describe(error, in: "data.pkl")) }
        var layout = "torch.save zip archive, folder '\(folder.dropLast().description.escapedForMessage)'"
        if let version = byName[folder + "version"] ?? byName[folder + ".data/version"] {
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: file[version.data.prefix(8)]), as: UTF8.self)
            if let number = Int(text.trimmingSpaces.trimmingCharacters("\n")) { layout += ", format version \(number)" }
        }
        return UnpickledCheckpoint(root: root, heap: machine.heap, layout: layout)
    }

    // MARK: - Legacy stream (torch < 1.6)

    /// The magic number 0x1950a86a20f9469cfc6c as pickle LONG1 bytes (little-endian).
    private static let magic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    /// Pickles of: the magic number, protocol version 1001, a sys_info dict, the object (with
    /// persistent ids for storages), the list of storage keys; then per key, in that order,
    /// the storage's element count (little-endian int64) and its raw bytes.
    static func legacy(_ file: UnsafeRawBufferPointer) throws(CheckpointError) -> UnpickledCheckpoint {
        // Each pickle may use at most the pickle size limit of the file.
        var position = 0
        func runPickle(_ what: String, heap: PickleHeap = PickleHeap()) throws(CheckpointError) -> (PickleValue, PickleHeap) {
            let end = min(file.count, position + TorchLimits.pickleBytes.maximum)
            var machine = PickleMachine(bytes: UnsafeRawBufferPointer(rebasing: file[..<end]), start: position, heap: heap)
            do {
                let value = try machine.run()
                position = machine.position
                return (value, machine.heap)
            } catch {
                throw CheckpointError(describe(error, in: what))
            }
        }
        let (magicValue, _) = try runPickle("the legacy header")
        guard case .bigInt(let bytes) = magicValue, bytes == magic else {
            throw CheckpointError("a pickle without PyTorch's magic number: not a torch.save file")
        }
        let (protocolValue, protocolHeap) = try runPickle("the legacy header")
        guard case .int(1001) = protocolValue else {
            throw CheckpointError("legacy protocol version \(PickleDescription.kind(protocolValue, heap: protocolHeap)), 1001 expected")
        }
        let (sysInfo, sysHeap) = try runPickle("the legacy sys_info")
        if case .dict(let d) = sysInfo, let little = sysHeap.dicts[d].value(forString: "little_endian"), case .bool(false) = little {
            throw CheckpointError("saved on a big-endian machine (sys_info little_endian False); idlevit reads little-endian checkpoints: load and save it again on a little-endian machine")
        }
        let (root, objectHeap) = try runPickle("the legacy object pickle")
        var (keys, heap) = try runPickle("the legacy storage key list", heap: objectHeap)
        guard case .list(let keyList) = keys else { throw CheckpointError("the legacy storage key list is \(PickleDescription.kind(keys, heap: heap))") }
        for keyValue in heap.lists[keyList] {
            guard case .string(let key) = keyValue, let index = heap.storageByKey[key] else {
                throw CheckpointError("the legacy storage key list names \(PickleDescription.kind(keyValue, heap: heap)), which no tensor uses")
            }
            guard heap.storages[index].bytes == nil else { throw CheckpointError("storage '\(key.escapedForMessage)' is listed twice") }
            guard file.count - position >= 8 else { throw CheckpointError("the file ends before storage '\(key.escapedForMessage)'") }
            var count: UInt64 = 0
            for i in 0..<8 { count |= UInt64(file[position + i]) << (8 * UInt64(i)) }
            let record = heap.storages[index]
            guard count == UInt64(record.elementCount) else {
                throw CheckpointError("storage '\(key.escapedForMessage)' holds \(Int64(bitPattern: count)) elements in the file, its persistent id says \(record.elementCount)")
            }
            let start = position + 8
            guard record.byteCount <= file.count - start else {
                throw CheckpointError("storage '\(key.escapedForMessage)' (\(record.byteCount) bytes at offset \(start)) runs past the end of the file")
            }
            heap.storages[index].bytes = start ..< start + record.byteCount
            position = start + record.byteCount
        }
        if let missing = heap.storages.first(where: { $0.bytes == nil }) {
            throw CheckpointError("storage '\(missing.key.escapedForMessage)' has no data in the file")
        }
        return UnpickledCheckpoint(root: root, heap: heap, layout: "legacy torch.save stream (torch < 1.6)")
    }

    static func describe(_ error: PickleError, in what: String) -> String {
        if let offset = error.offset { return "\(what), byte \(offset): \(error.message)" }
        return "\(what): \(error.message)"
    }
}

extension Substring {
    func trimmingCharacters(_ character: Character) -> Substring {
        var s = self
        while s.first == character { s.removeFirst() }
        while s.last == character { s.removeLast() }
        return s
    }
}
