import Importers
#if canImport(Glibc)
import Glibc
#endif
import CHDF5
import HDF5Importer

/// Reads the attributes of the root (and the top group) as metadata: strings as they are,
/// scalar numbers as text (so `num_heads = 6` written as an integer still reaches the
/// recogniser). Arrays and other types are listed as skipped.
struct AttributeReader {
    var found: [HDF5Attribute] = []
    var skipped: [String] = []

    static let maximumAttributes = 1000
    static let maximumValueBytes = 1 << 20

    mutating func read(from object: hid_t, owner: String) throws(ReaderFailure) {
        var kind: Int32 = 0
        var identity: UInt64 = 0
        var count: UInt64 = 0
        guard idlevit_h5_object_info(object, ".", &kind, &identity, &count) >= 0 else {
            throw .library("cannot read the attributes of '\(owner)'")
        }
        guard count <= UInt64(Self.maximumAttributes) else {
            throw .rejected(dataset: nil, rule: "'\(owner)' claims \(count) attributes: the file is corrupt")
        }
        for index in 0..<count {
            let attribute = H5Aopen_by_idx(object, ".", H5_INDEX_NAME, H5_ITER_INC, index, idlevit_h5p_default(), idlevit_h5p_default())
            guard attribute >= 0 else { throw .library("cannot open attribute \(index) of '\(owner)'") }
            defer { H5Aclose(attribute) }
            let name = try Self.name(of: attribute, owner: owner)
            guard !name.unicodeScalars.contains(where: \.isUnprintable) else {
                skipped.append(name.escapedForMessage)
                continue
            }
            if let value = try Self.value(of: attribute, label: "attribute '\(name)' of '\(owner)'") {
                found.append(HDF5Attribute(owner: owner, name: name, value: value))
            } else {
                skipped.append(owner == "/" ? name : owner + "/" + name)
            }
        }
    }

    private static func name(of attribute: hid_t, owner: String) throws(ReaderFailure) -> String {
        let length = H5Aget_name(attribute, 0, nil)
        guard length >= 0, length <= 4096 else { throw .library("cannot read an attribute name of '\(owner)'") }
        var buffer = [CChar](repeating: 0, count: length + 1)
        guard H5Aget_name(attribute, length + 1, &buffer) >= 0 else { throw .library("cannot read an attribute name of '\(owner)'") }
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The value as text, or nil when it is not a string or a single number.
    private static func value(of attribute: hid_t, label: String) throws(ReaderFailure) -> String? {
        let type = H5Aget_type(attribute)
        guard type >= 0 else { throw .library("cannot read the type of \(label)") }
        defer { H5Tclose(type) }
        let space = H5Aget_space(attribute)
        guard space >= 0 else { throw .library("cannot read the shape of \(label)") }
        defer { H5Sclose(space) }
        guard H5Sget_simple_extent_npoints(space) == 1 else { return nil }

        switch H5Tget_class(type) {
        case H5T_STRING:
            if H5Tis_variable_str(type) > 0 {
                let memoryType = H5Tcopy(idlevit_h5t_c_s1())
                defer { H5Tclose(memoryType) }
                H5Tset_size(memoryType, idlevit_h5t_variable())
                H5Tset_cset(memoryType, H5Tget_cset(type))
                var text: UnsafeMutablePointer<CChar>?
                guard H5Aread(attribute, memoryType, &text) >= 0 else { throw .library("cannot read \(label)") }
                guard let text else { return "" }
                defer { H5free_memory(text) }
                let length = strnlen(text, maximumValueBytes)
                return String(decoding: UnsafeRawBufferPointer(start: text, count: length), as: UTF8.self)
            }
            let size = H5Tget_size(type)
            guard size > 0, size <= maximumValueBytes else { return nil }
            // Fixed-length: read with the file's own type, then drop NUL / space padding.
            var buffer = [UInt8](repeating: 0, count: size)
            guard H5Aread(attribute, type, &buffer) >= 0 else { throw .library("cannot read \(label)") }
            let end = buffer.firstIndex(of: 0) ?? buffer.count
            var text = String(decoding: buffer[..<end], as: UTF8.self)
            while text.last == " " { text.removeLast() }
            return text
        case H5T_INTEGER:
            var number: Int64 = 0
            guard H5Aread(attribute, idlevit_h5t_native_llong(), &number) >= 0 else { throw .library("cannot read \(label)") }
            return String(number)
        case H5T_FLOAT:
            var number: Double = 0
            guard H5Aread(attribute, idlevit_h5t_native_double(), &number) >= 0 else { throw .library("cannot read \(label)") }
            return String(number)
        default:
            return nil
        }
    }
}
