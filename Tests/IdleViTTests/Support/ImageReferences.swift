import Foundation
import XCTest

/// The image references (Fixtures/images/*.safetensors) read directly: they hold U8 tensors,
/// which the model importers rightly refuse, so the tests parse the small header themselves.
struct ReferenceTensors {
    struct Entry {
        var dtype: String
        var shape: [Int]
        var range: Range<Int>
    }

    let data: Data
    let entries: [String: Entry]
    let metadata: [String: String]

    init(fixture relative: String) throws {
        data = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture(relative)))
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as! [String: Any]
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            let fields = value as! [String: Any]
            if name == "__metadata__" {
                metadata = fields.compactMapValues { $0 as? String }
                continue
            }
            let offsets = fields["data_offsets"] as! [Int]
            entries[name] = Entry(dtype: fields["dtype"] as! String, shape: fields["shape"] as! [Int],
                                  range: (8 + headerLength + offsets[0])..<(8 + headerLength + offsets[1]))
        }
        self.entries = entries
        self.metadata = metadata
    }

    func bytes(_ name: String) throws -> (shape: [Int], values: [UInt8]) {
        let entry = try XCTUnwrap(entries[name], "no tensor \(name)")
        XCTAssertEqual(entry.dtype, "U8")
        return (entry.shape, [UInt8](data.subdata(in: entry.range)))
    }

    func floats(_ name: String) throws -> (shape: [Int], values: [Float]) {
        let entry = try XCTUnwrap(entries[name], "no tensor \(name)")
        XCTAssertEqual(entry.dtype, "F32")
        let raw = data.subdata(in: entry.range)
        let values = raw.withUnsafeBytes { buffer in
            (0..<(raw.count / 4)).map { Float(bitPattern: buffer.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) }
        }
        return (entry.shape, values)
    }

    /// The JSON list of photo file names stored under `photos`.
    var photos: [String] {
        (try? JSONSerialization.jsonObject(with: Data((metadata["photos"] ?? "[]").utf8))) as? [String] ?? []
    }
}
