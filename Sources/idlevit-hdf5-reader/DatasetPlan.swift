#if canImport(Glibc)
import Glibc
#endif
import CHDF5
import HDF5Importer
import IR

/// One dataset, inspected before any of its data is read: type, shape, storage, filters and
/// where its bytes are. Everything that would make libhdf5 read past the file, allocate a
/// forged size, load a plugin or open another file is refused here.
enum DatasetPlan {
    /// No real compressor shrinks float weights 1000x (gzip's best is ~1030x on zeros, and a
    /// state dict is not all zeros), so a larger claim is a forged header.
    static let compressionLimit = 1000
    /// The largest single tensor idlevit accepts.
    static let maximumTensorBytes = 4 << 30

    /// Filters libhdf5 has built in; anything else needs a plugin, which the reader never loads.
    static let builtInFilters: [H5Z_filter_t: String] = [
        H5Z_FILTER_DEFLATE: "gzip", H5Z_FILTER_SHUFFLE: "shuffle", H5Z_FILTER_FLETCHER32: "fletcher32",
    ]
    static let knownPluginFilters: [H5Z_filter_t: String] = [
        32000: "lzf", 32001: "blosc", 32004: "lz4", 32008: "bitshuffle", 32015: "zstd", 32017: "sz",
        H5Z_FILTER_SZIP: "szip", H5Z_FILTER_NBIT: "nbit", H5Z_FILTER_SCALEOFFSET: "scale-offset",
    ]

    static func inspect(file: hid_t, path: String, name: String, fileSize: Int) throws(ReaderFailure) -> HDF5DatasetInfo {
        func reject(_ rule: String) -> ReaderFailure { .rejected(dataset: name, rule: rule) }
        let dataset = H5Dopen2(file, path, idlevit_h5p_default())
        guard dataset >= 0 else { throw .library("cannot open the dataset", dataset: name) }
        defer { H5Dclose(dataset) }

        let sourceType = try elementType(of: dataset, name: name)
        let shape = try extent(of: dataset, name: name)
        var count = 1
        for extent in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            guard !overflow, product <= maximumTensorBytes else { throw reject("shape \(shape) is absurdly large: the file is corrupt") }
            count = product
        }
        let logicalBytes = count * sourceType.size
        guard count * 4 <= maximumTensorBytes else {
            throw reject("shape \(shape) needs \(count * 4) bytes, more than the 4 GiB idlevit accepts per tensor")
        }
        guard logicalBytes <= compressionLimit * max(fileSize, 1) else {
            throw reject("shape \(shape) needs \(logicalBytes) bytes, more than \(compressionLimit) times the file's \(fileSize): the file is corrupt")
        }

        let properties = H5Dget_create_plist(dataset)
        guard properties >= 0 else { throw .library("cannot read its storage properties", dataset: name) }
        defer { H5Pclose(properties) }
        guard H5Pget_external_count(properties) == 0 else {
            throw reject("keeps its data in external raw files, which idlevit does not open")
        }
        let storage: String
        switch H5Pget_layout(properties) {
        case H5D_CONTIGUOUS: storage = "contiguous"
        case H5D_CHUNKED: storage = "chunked"
        case H5D_COMPACT: storage = "compact"
        case H5D_VIRTUAL: throw reject("is a virtual dataset (it maps other datasets or files); store the tensor itself")
        default: throw .library("cannot read its storage layout", dataset: name)
        }
        let filters = try filterNames(properties, name: name)
        if storage == "chunked" {
            let chunk = try checkChunks(properties, rank: shape.count, name: name)
            // Chunks cover the tensor in a grid; a missing one would silently read as zeros.
            let expected = zip(shape, chunk).reduce(1) { $0 * (($1.0 + $1.1 - 1) / $1.1) }
            try checkChunkAddresses(dataset, name: name, fileSize: fileSize, expected: expected)
        }

        let stored = H5Dget_storage_size(dataset)
        guard count == 0 || stored > 0 else {
            throw reject("has no data stored (created but never written)")
        }
        guard stored <= UInt64(fileSize) else {
            throw reject("claims \(stored) stored bytes in a file of \(fileSize): the file is truncated or corrupt")
        }
        if storage == "contiguous" {
            guard stored == UInt64(logicalBytes) else {
                throw reject("stores \(stored) bytes for shape \(shape) of \(sourceType.rawValue) (\(logicalBytes) expected): the file is corrupt")
            }
            // HADDR_UNDEF (all ones) for unallocated data also fails this test.
            let offset = UInt64(H5Dget_offset(dataset))
            guard offset <= UInt64(fileSize), UInt64(fileSize) - offset >= stored else {
                throw reject("its data (\(stored) bytes at \(offset)) lies beyond the end of the file (\(fileSize) bytes): the file is truncated")
            }
        }
        return HDF5DatasetInfo(name: name, path: path, sourceType: sourceType, shape: shape, storage: storage,
                               filters: filters, storedBytes: Int(stored))
    }

    /// f16, f32 or f64; anything else is named in the error.
    private static func elementType(of dataset: hid_t, name: String) throws(ReaderFailure) -> ElementType {
        let type = H5Dget_type(dataset)
        guard type >= 0 else { throw .library("cannot read its type", dataset: name) }
        defer { H5Tclose(type) }
        let size = H5Tget_size(type)
        let typeClass = H5Tget_class(type)
        guard typeClass == H5T_FLOAT else {
            throw .rejected(dataset: name, rule: "stores \(describe(typeClass, size: size)) values; weights must be float16, float32 or float64")
        }
        switch size {
        case 2:
            // Only IEEE binary16 (what numpy and PyTorch call float16) is read bit for bit.
            var sign = 0, exponentPosition = 0, exponentSize = 0, mantissaPosition = 0, mantissaSize = 0
            guard H5Tget_fields(type, &sign, &exponentPosition, &exponentSize, &mantissaPosition, &mantissaSize) >= 0,
                  sign == 15, exponentPosition == 10, exponentSize == 5, mantissaPosition == 0, mantissaSize == 10,
                  H5Tget_ebias(type) == 15 else {
                throw .rejected(dataset: name, rule: "stores a 2-byte float that is not IEEE float16 (bfloat16?); write float16 or float32")
            }
            return .f16
        case 4: return .f32
        case 8: return .f64
        default:
            throw .rejected(dataset: name, rule: "stores \(size)-byte floats; weights must be float16, float32 or float64")
        }
    }

    private static func describe(_ typeClass: H5T_class_t, size: Int) -> String {
        switch typeClass {
        case H5T_INTEGER: return "\(size * 8)-bit integer"
        case H5T_STRING: return "string"
        case H5T_COMPOUND: return "compound (record)"
        case H5T_ENUM: return "enum (bool?)"
        case H5T_ARRAY: return "array-typed"
        case H5T_VLEN: return "variable-length"
        case H5T_REFERENCE: return "reference"
        case H5T_OPAQUE: return "opaque"
        case H5T_BITFIELD: return "bitfield"
        default: return "non-numeric"
        }
    }

    private static func extent(of dataset: hid_t, name: String) throws(ReaderFailure) -> [Int] {
        let space = H5Dget_space(dataset)
        guard space >= 0 else { throw .library("cannot read its shape", dataset: name) }
        defer { H5Sclose(space) }
        switch H5Sget_simple_extent_type(space) {
        case H5S_SCALAR: return []
        case H5S_SIMPLE: break
        case H5S_NULL: throw .rejected(dataset: name, rule: "has an empty (null) dataspace: no tensor is stored")
        default: throw .library("cannot read its shape", dataset: name)
        }
        let rank = H5Sget_simple_extent_ndims(space)
        guard rank >= 0, rank <= 32 else { throw .library("cannot read its shape", dataset: name) }
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        guard H5Sget_simple_extent_dims(space, &dims, nil) == rank else { throw .library("cannot read its shape", dataset: name) }
        guard dims.allSatisfy({ $0 <= UInt64(maximumTensorBytes) }) else {
            throw .rejected(dataset: name, rule: "shape \(dims) is absurdly large: the file is corrupt")
        }
        return dims.map { Int($0) }
    }

    /// The filter pipeline, refusing filters that would need a plugin.
    private static func filterNames(_ properties: hid_t, name: String) throws(ReaderFailure) -> [String] {
        let count = H5Pget_nfilters(properties)
        guard count >= 0, count <= 32 else { throw .library("cannot read its filters", dataset: name) }
        var names: [String] = []
        for index in 0..<UInt32(count) {
            var flags: UInt32 = 0
            var valueCount = 8
            var values = [UInt32](repeating: 0, count: 8)
            var filterName = [CChar](repeating: 0, count: 64)
            var configuration: UInt32 = 0
            let filter = H5Pget_filter2(properties, index, &flags, &valueCount, &values, 64, &filterName, &configuration)
            guard filter >= 0 else { throw .library("cannot read its filters", dataset: name) }
            if let builtIn = builtInFilters[filter] {
                names.append(filter == H5Z_FILTER_DEFLATE && valueCount >= 1 ? "gzip \(values[0])" : builtIn)
                continue
            }
            let known = knownPluginFilters[filter].map { "\($0) (filter \(filter))" } ?? "filter \(filter)"
            throw .rejected(dataset: name, rule: "is compressed with \(known), which needs an HDF5 plugin idlevit does not load; rewrite it with gzip or no compression")
        }
        return names
    }

    /// The chunk extents, each positive and the chunk under libhdf5's 4 GiB limit.
    private static func checkChunks(_ properties: hid_t, rank: Int, name: String) throws(ReaderFailure) -> [Int] {
        var chunk = [hsize_t](repeating: 0, count: 32)
        let chunkRank = H5Pget_chunk(properties, 32, &chunk)
        guard chunkRank == Int32(rank) || (rank == 0 && chunkRank >= 0) else {
            throw .rejected(dataset: name, rule: "its chunks have rank \(chunkRank) but the tensor has rank \(rank): the file is corrupt")
        }
        var bytes: UInt64 = 8
        for extent in chunk.prefix(Int(chunkRank)) {
            guard extent > 0, extent <= UInt64(maximumTensorBytes) else {
                throw .rejected(dataset: name, rule: "has a chunk extent of \(extent): the file is corrupt")
            }
            bytes = bytes.multipliedReportingOverflow(by: extent).partialValue
            guard bytes <= UInt64(maximumTensorBytes) else {
                throw .rejected(dataset: name, rule: "its chunks would be larger than 4 GiB: the file is corrupt")
            }
        }
        return chunk.prefix(Int(chunkRank)).map { Int($0) }
    }

    /// Every chunk must lie inside the file. Looking a chunk up by index walks the chunk
    /// index, so only the first few thousand are checked; libhdf5 still bounds the rest.
    private static func checkChunkAddresses(_ dataset: hid_t, name: String, fileSize: Int, expected: Int) throws(ReaderFailure) {
        let space = H5Dget_space(dataset)
        guard space >= 0 else { throw .library("cannot read its shape", dataset: name) }
        defer { H5Sclose(space) }
        var count: hsize_t = 0
        guard H5Dget_num_chunks(dataset, space, &count) >= 0 else {
            throw .library("cannot read its chunk index", dataset: name)
        }
        guard count == UInt64(expected) else {
            throw .rejected(dataset: name, rule: "\(count) of its \(expected) chunks are stored: part of the tensor was never written or the chunk index is corrupt")
        }
        for index in 0..<min(count, 4096) {
            var offset = [hsize_t](repeating: 0, count: 32)
            var filterMask: UInt32 = 0
            var address: haddr_t = 0
            var size: hsize_t = 0
            guard H5Dget_chunk_info(dataset, space, index, &offset, &filterMask, &address, &size) >= 0 else {
                throw .library("cannot read chunk \(index) of its chunk index", dataset: name)
            }
            guard UInt64(address) <= UInt64(fileSize), UInt64(fileSize) - UInt64(address) >= size else {
                throw .rejected(dataset: name, rule: "chunk \(index) (\(size) bytes at \(address)) lies beyond the end of the file (\(fileSize) bytes): the file is truncated or corrupt")
            }
        }
    }
}
