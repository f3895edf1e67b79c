#if canImport(Glibc)
import Glibc
#endif
import CHDF5
import HDF5Importer

/// An open HDF5 file and the walk of its groups. Only hard links are followed: soft links
/// could make a tensor appear twice and external links would open other files.
final class HDF5File {
    let fileSize: Int
    private let handle: hid_t

    /// Limits on the walk, so a forged file cannot make it unbounded.
    static let maximumDepth = 32
    static let maximumObjects = 100_000
    static let maximumNameBytes = 4096

    init(path: String) throws(ReaderFailure) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw .rejected(dataset: nil, rule: "cannot read it: " + String(cString: strerror(errno)))
        }
        fileSize = Int(info.st_size)
        let opened = H5Fopen(path, idlevit_h5f_acc_rdonly(), idlevit_h5p_default())
        guard opened >= 0 else { throw .library("cannot open it") }
        handle = opened
    }

    func close() { H5Fclose(handle) }

    /// Everything the output needs, checked before any tensor data is read.
    func plan() throws(ReaderFailure) -> HDF5Description {
        let rootLinks = try members(of: handle, path: [])
        // One top-level group wrapping everything (`state_dict/...`) is not part of the names.
        var topGroup: String?
        if rootLinks.count == 1, rootLinks[0].kind == H5O_TYPE_GROUP {
            topGroup = rootLinks[0].name
        }
        var found: [[String]] = []
        var visited = 0
        try walk(group: handle, path: [], ancestors: [], links: rootLinks, into: &found, visited: &visited)

        var datasets: [HDF5DatasetInfo] = []
        var names: [String: String] = [:]
        var totalBytes = 0
        for components in found {
            let path = "/" + components.joined(separator: "/")
            let nameParts = topGroup == nil ? components : Array(components.dropFirst())
            let name = nameParts.joined(separator: ".")
            if let other = names[name] {
                throw .rejected(dataset: path, rule: "'\(other)' and '\(path)' both give the tensor name '\(name)'")
            }
            names[name] = path
            let dataset = try DatasetPlan.inspect(file: handle, path: path, name: name, fileSize: fileSize)
            totalBytes += dataset.logicalBytes
            guard totalBytes <= DatasetPlan.compressionLimit * max(fileSize, 1) else {
                throw .rejected(dataset: nil, rule: "its datasets claim more than \(DatasetPlan.compressionLimit) times the file's \(fileSize) bytes: the file is corrupt")
            }
            datasets.append(dataset)
        }
        guard !datasets.isEmpty else {
            throw .rejected(dataset: nil, rule: "it holds no datasets: a state dict stores one dataset per tensor")
        }
        var attributes = AttributeReader()
        try attributes.read(from: handle, owner: "/")
        if let topGroup {
            let group = H5Gopen2(handle, topGroup, idlevit_h5p_default())
            guard group >= 0 else { throw .library("cannot open group '/\(topGroup)'") }
            defer { H5Gclose(group) }
            try attributes.read(from: group, owner: topGroup)
        }
        return HDF5Description(topGroup: topGroup, datasets: datasets, attributes: attributes.found,
                               skippedAttributes: attributes.skipped, library: Self.libraryVersion())
    }

    func openDataset(_ path: String) throws(ReaderFailure) -> hid_t {
        let dataset = H5Dopen2(handle, path, idlevit_h5p_default())
        guard dataset >= 0 else { throw .library("cannot open the dataset", dataset: path) }
        return dataset
    }

    struct Link {
        var name: String
        var kind: H5O_type_t
        var identity: UInt64
    }

    /// The links of a group, in natural order (`blocks/2` before `blocks/10`), hard only.
    private func members(of group: hid_t, path: [String]) throws(ReaderFailure) -> [Link] {
        let where_ = "/" + path.joined(separator: "/")
        var info = H5G_info_t()
        guard H5Gget_info(group, &info) >= 0 else { throw .library("cannot list group '\(where_)'") }
        guard info.nlinks <= UInt64(Self.maximumObjects) else {
            throw .rejected(dataset: nil, rule: "group '\(where_)' claims \(info.nlinks) members: the file is corrupt")
        }
        var result: [Link] = []
        for index in 0..<info.nlinks {
            let length = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, idlevit_h5p_default())
            guard length > 0, length <= Self.maximumNameBytes else {
                throw length < 0 ? .library("cannot read member \(index) of group '\(where_)'")
                    : .rejected(dataset: nil, rule: "member \(index) of group '\(where_)' has a name of \(length) bytes")
            }
            var buffer = [CChar](repeating: 0, count: length + 1)
            guard H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer, length + 1, idlevit_h5p_default()) >= 0 else {
                throw .library("cannot read member \(index) of group '\(where_)'")
            }
            let bytes = buffer.prefix(length).map { UInt8(bitPattern: $0) }
            // State-dict keys are printable UTF-8; anything else is damage, and would be
            // unsafe to echo in messages.
            guard let name = String(validating: bytes, as: UTF8.self),
                  !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                // Escaped once, with the whole rule, by HDF5ReaderProtocol.rejectionLine.
                let shown = String(decoding: bytes, as: UTF8.self)
                throw .rejected(dataset: nil, rule: "member \(index) of group '\(where_)' has a name that is not printable UTF-8 ('\(shown)'): the file is corrupt")
            }
            let member = where_ == "/" ? "/" + name : where_ + "/" + name
            switch idlevit_h5_link_is_hard(group, buffer) {
            case 1: break
            case 0: throw .rejected(dataset: member, rule: "is a soft or external link; a state dict stores each tensor as a dataset")
            default: throw .library("cannot read the link '\(member)'")
            }
            var kind: Int32 = 0
            var identity: UInt64 = 0
            var attributeCount: UInt64 = 0
            guard idlevit_h5_object_info(group, buffer, &kind, &identity, &attributeCount) >= 0 else {
                throw .library("cannot read the object '\(member)'")
            }
            result.append(Link(name: name, kind: H5O_type_t(kind), identity: identity))
        }
        return result.sorted { NaturalOrder.precedes($0.name, $1.name) }
    }

    private func walk(group: hid_t, path: [String], ancestors: Set<UInt64>, links: [Link],
                      into found: inout [[String]], visited: inout Int) throws(ReaderFailure) {
        guard path.count < Self.maximumDepth else {
            throw .rejected(dataset: nil, rule: "groups nest deeper than \(Self.maximumDepth) levels at '/\(path.joined(separator: "/"))'")
        }
        for link in links {
            visited += 1
            guard visited <= Self.maximumObjects else {
                throw .rejected(dataset: nil, rule: "it holds more than \(Self.maximumObjects) objects: not a state dict")
            }
            let memberPath = path + [link.name]
            let shown = "/" + memberPath.joined(separator: "/")
            switch link.kind {
            case H5O_TYPE_DATASET:
                found.append(memberPath)
            case H5O_TYPE_GROUP:
                guard !ancestors.contains(link.identity) else {
                    throw .rejected(dataset: nil, rule: "group '\(shown)' contains itself (a link cycle): the file is corrupt")
                }
                let child = H5Gopen2(group, link.name, idlevit_h5p_default())
                guard child >= 0 else { throw .library("cannot open group '\(shown)'") }
                defer { H5Gclose(child) }
                let childLinks = try members(of: child, path: memberPath)
                try walk(group: child, path: memberPath, ancestors: ancestors.union([link.identity]), links: childLinks,
                         into: &found, visited: &visited)
            default:
                // Named datatypes and other objects hold no tensor data.
                continue
            }
        }
    }

    static func libraryVersion() -> String {
        var major: UInt32 = 0, minor: UInt32 = 0, release: UInt32 = 0
        H5get_libversion(&major, &minor, &release)
        return "libhdf5 \(major).\(minor).\(release)"
    }
}

/// Orders names with digit runs compared as numbers, so nested block indices sort 0, 1, 2, 10.
enum NaturalOrder {
    static func precedes(_ a: String, _ b: String) -> Bool {
        let left = chunks(a), right = chunks(b)
        for (x, y) in zip(left, right) where x != y {
            if let i = Int(x), let j = Int(y), i != j { return i < j }
            return x < y
        }
        return left.count < right.count
    }

    private static func chunks(_ text: String) -> [String] {
        var result: [String] = []
        var current = ""
        var currentIsDigit = false
        for character in text {
            let isDigit = character.isASCII && character.isNumber
            if !current.isEmpty && isDigit != currentIsDigit {
                result.append(current)
                current = ""
            }
            current.append(character)
            currentIsDigit = isDigit
        }
        if !current.isEmpty { result.append(current) }
        return result
    }
}
