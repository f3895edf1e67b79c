import HDF5Importer
import IR
import Importers
import TorchImporter

/// Detects a model file's kind from its first bytes, never from its extension.
public enum FormatDetection {
    public static func detect(path: String) throws(ImportError) -> ModelFormat {
        let file = displayName(path)
        // Mapping costs nothing until pages are touched, and checks for a regular file.
        let storage: TensorStorage
        do { storage = try TensorStorage.map(path: path) } catch { throw .unreadable(file: file, reason: error.message) }
        let bytes = storage.bytes(0..<storage.byteCount)
        let head = Array(bytes.prefix(1024 + 8))
        guard !head.isEmpty else { throw .invalidFile(file: file, format: "model file", rule: "the file is empty") }
        if head.starts(with: Array("version https://git-lfs".utf8)) {
            throw .invalidFile(file: file, format: "model file",
                               rule: "this is a Git LFS pointer file, not the weights: run `git lfs pull` to fetch the real file")
        }
        // PyTorch torch.save: a zip archive, or a legacy stream of pickles (checked before
        // safetensors, whose length heuristic a zip's first bytes would pass).
        if TorchImporter.recognizes(head: head) { return .pytorch }
        // HDF5: the signature where libhdf5 looks for it, at 0 or after a user block.
        if HDF5Superblock.signatureOffset(in: bytes) != nil { return .hdf5 }
        // safetensors: a little-endian u64 header length, then '{'.
        if head.count >= 9 {
            var length: UInt64 = 0
            for i in 0..<8 { length |= UInt64(head[i]) << (8 * UInt64(i)) }
            if head[8] == UInt8(ascii: "{") && length >= 2 {
                return isBundle(head: head) ? .bundle : .safetensors
            }
            if head[8] == UInt8(ascii: "{") || (length > 0 && length < (1 << 40) && head[7] == 0 && head[6] == 0 && head[0] != 0x08) {
                return .safetensors  // let the safetensors validator say what is wrong
            }
        }
        if head.count < 9, head[0] != 0x08 { return .safetensors }
        // ONNX ModelProto: a protobuf message whose first field is usually ir_version (tag 0x08).
        if [0x08, 0x12, 0x1A, 0x22, 0x2A, 0x32, 0x3A, 0x42, 0x72].contains(head[0]) { return .onnx }
        throw .unrecognizedFormat(file: file, reason: "the first bytes match no known signature")
    }

    /// A bundle is a safetensors file whose metadata says `"format":"idlevit-bundle"`; the
    /// writer puts `__metadata__` first, so its start tells.
    static func isBundle(head: [UInt8]) -> Bool {
        let text = String(decoding: head.dropFirst(8), as: UTF8.self)
        return text.hasPrefix("{\"__metadata__\":{") && text.contains("\"format\":\"idlevit-bundle\"")
    }
}
