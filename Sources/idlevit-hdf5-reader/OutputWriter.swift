#if canImport(Glibc)
import Glibc
#endif
import CHDF5
import Exporters
import HDF5Importer
import IR

/// Streams the planned datasets into one safetensors file: one tensor in memory at a time.
/// float16 stays F16 (bit for bit); float32 and float64 become F32 (libhdf5 converts f64).
/// F32 tensors come first so each stays 4-byte aligned for mapping; the parent uses the
/// description, not this order.
///
/// The file is private to one import and read only after this process exits 0, so it is
/// neither renamed into place nor fsynced (fsync cost ~1 s on a DeiT-B); idlevit removes it,
/// complete or partial.
enum OutputWriter {
    static func write(_ description: HDF5Description, from file: HDF5File, to path: String) throws(ReaderFailure) {
        let ordered = description.datasets.filter { $0.sourceType != .f16 } + description.datasets.filter { $0.sourceType == .f16 }
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else { throw .cannotWrite("\(path): " + String(cString: strerror(errno))) }
        defer { close(descriptor) }
        let header = header(ordered, description: description)
        // withUnsafeBytes only rethrows untyped errors, so the failure is carried out by hand.
        let headerFailure: ReaderFailure? = header.withUnsafeBytes { bytes in
            do throws(ReaderFailure) { try writeAll(bytes, to: descriptor, path: path) } catch { return error }
            return nil
        }
        if let headerFailure { throw headerFailure }
        for dataset in ordered {
            let buffer = try read(dataset, from: file)
            defer { buffer.deallocate() }
            try writeAll(UnsafeRawBufferPointer(buffer), to: descriptor, path: path)
        }
    }

    private static func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32, path: String) throws(ReaderFailure) {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw .cannotWrite("\(path): " + String(cString: strerror(errno)))
            }
            offset += written
        }
    }

    /// The whole dataset in the output's element type.
    static func read(_ dataset: HDF5DatasetInfo, from file: HDF5File) throws(ReaderFailure) -> UnsafeMutableRawBufferPointer {
        let name = dataset.name
        let handle = try file.openDataset(dataset.path)
        defer { H5Dclose(handle) }
        let count = dataset.shape.reduce(1, *)
        let isHalf = dataset.sourceType == .f16
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count * (isHalf ? 2 : 4), 1), alignment: 64)
        let memoryType: hid_t
        if isHalf {
            // The file's own half type in little-endian order: libhdf5 copies the bits
            // (swapping bytes if the file is big-endian), no float conversion involved.
            let fileType = H5Dget_type(handle)
            guard fileType >= 0 else { buffer.deallocate(); throw .library("cannot read its type", dataset: name) }
            memoryType = H5Tcopy(fileType)
            H5Tclose(fileType)
            H5Tset_order(memoryType, H5T_ORDER_LE)
        } else {
            memoryType = idlevit_h5t_native_float()
        }
        defer { if isHalf { H5Tclose(memoryType) } }
        guard count == 0 || H5Dread(handle, memoryType, idlevit_h5s_all(), idlevit_h5s_all(), idlevit_h5p_default(), buffer.baseAddress) >= 0 else {
            buffer.deallocate()
            throw .library("cannot read its data", dataset: name)
        }
        return UnsafeMutableRawBufferPointer(start: buffer.baseAddress, count: count * (isHalf ? 2 : 4))
    }

    /// The safetensors header, with the description in `__metadata__`.
    static func header(_ datasets: [HDF5DatasetInfo], description: HDF5Description) -> [UInt8] {
        SafetensorsWriter.headerBytes(
            datasets.map { SafetensorsWriter.HeaderEntry(name: $0.name, dtype: $0.sourceType == .f16 ? .f16 : .f32, shape: $0.shape) },
            metadata: [(HDF5ReaderProtocol.descriptionKey, JSONWriter.write(description.json))])
    }
}
