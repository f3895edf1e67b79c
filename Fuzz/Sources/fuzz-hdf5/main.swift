// The HDF5 checks idlevit makes itself, before libhdf5 (in its separate reader process)
// sees a file: the superblock (signature search, version, field sizes, end address), and the
// reader's description JSON as idlevit parses it back.
import FuzzSupport
import HDF5Importer
import IR

func fuzzHDF5(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let path = FuzzInput.write(data, size, name: "model.h5")
    do {
        let superblock = try HDF5Superblock.check(path: path)
        _ = superblock.recordedEnd
    } catch {
        _ = error.description.lineSafe
    }
    if let json = try? JSONParser.parse(FuzzInput.bytes(data, size)), let description = HDF5Description(json: json) {
        _ = description.datasets.map(\.logicalBytes)
    }
    return 0
}

runFuzzer { data, size in fuzzHDF5(data, size) }
