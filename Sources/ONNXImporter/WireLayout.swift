/// Where the initializers sit in an ONNX file, found by walking the protobuf wire format.
///
/// Unpacking a whole ModelProto makes protobuf-c copy every weight while the file is also in
/// memory: twice the model's size. The reader instead unpacks the model and graph without
/// their initializers (small: nodes and constants), then each initializer on its own straight
/// from the mapped file, releasing that part of the map once the tensor is decoded, so the peak
/// stays near one copy of the weights.
struct WireLayout {
    /// The ModelProto's fields except the graph.
    var model: [UInt8] = []
    /// The GraphProto's fields except its initializers.
    var graph: [UInt8] = []
    /// Byte ranges (in the file) of each initializer's TensorProto, in order.
    var initializers: [Range<Int>] = []

    enum Problem: Error {
        case malformed
        case noGraph
        case severalGraphs
    }

    static func split(_ bytes: UnsafeRawBufferPointer) throws(Problem) -> WireLayout {
        var layout = WireLayout()
        var graphRange: Range<Int>?
        try forEachField(bytes, in: 0..<bytes.count) { (number, _, whole, payload) throws(Problem) in
            if number == 7, let payload {
                guard graphRange == nil else { throw .severalGraphs }
                graphRange = payload
            } else {
                layout.model += bytes[whole]
            }
        }
        guard let graphRange else { throw .noGraph }
        try forEachField(bytes, in: graphRange) { (number, _, whole, payload) throws(Problem) in
            if number == 5, let payload {
                layout.initializers.append(payload)
            } else {
                layout.graph += bytes[whole]
            }
        }
        return layout
    }

    /// Calls `body` with each field's number, its wire type, its whole byte range (key
    /// included) and, for length-delimited fields, its payload range. Groups and unknown wire
    /// types are malformed (protobuf-c refuses them too).
    static func forEachField(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>,
                             _ body: (_ number: UInt64, _ wireType: UInt64, _ whole: Range<Int>, _ payload: Range<Int>?) throws(Problem) -> Void) throws(Problem) {
        var position = range.lowerBound
        while position < range.upperBound {
            let start = position
            let key = try varint(bytes, &position, end: range.upperBound)
            var payload: Range<Int>?
            switch key & 7 {
            case 0: _ = try varint(bytes, &position, end: range.upperBound)
            case 1, 5:
                let width = key & 7 == 1 ? 8 : 4
                guard range.upperBound - position >= width else { throw .malformed }
                position += width
            case 2:
                let length = try varint(bytes, &position, end: range.upperBound)
                guard length <= UInt64(range.upperBound - position) else { throw .malformed }
                payload = position..<(position + Int(length))
                position += Int(length)
            default:
                throw .malformed
            }
            try body(key >> 3, key & 7, start..<position, payload)
        }
    }

    private static func varint(_ bytes: UnsafeRawBufferPointer, _ position: inout Int, end: Int) throws(Problem) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < end, shift < 64 {
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        throw .malformed
    }
}
