/// Bounds what protobuf-c will allocate before it unpacks a file.
///
/// protobuf-c trusts the file: every sub-message becomes a struct of ~100+ bytes, every
/// string a separate allocation, every packed varint 8 bytes. A hostile file of 2-byte empty
/// nodes (`0A 00`) would expand 60-fold and take the process down with an out-of-memory kill,
/// which is a crash. This walk over the wire format, guided by the same schema
/// (Schemas/onnx.proto), adds up a generous estimate of those allocations so the reader can
/// refuse the file first. It allocates nothing and never recurses deeper than the schema.
enum UnpackBudget {
    /// What one file may cost unpacked: twice its size (raw_data is copied) plus this.
    static let allowance = 512 << 20

    private enum Field {
        case message(Message)
        case bytes
        case scalars
    }

    private enum Message {
        case model, graph, node, attribute, tensor, valueInfo, type, typeTensor, shape, dimension, opset, entry

        func field(_ number: UInt64) -> Field? {
            switch (self, number) {
            case (.model, 7): return .message(.graph)
            case (.model, 8): return .message(.opset)
            case (.model, 14), (.graph, 16), (.node, 9), (.tensor, 13), (.tensor, 16), (.valueInfo, 4): return .message(.entry)
            case (.model, 2), (.model, 3), (.model, 4), (.model, 6): return .bytes
            case (.graph, 1): return .message(.node)
            case (.graph, 5), (.attribute, 5), (.attribute, 10): return .message(.tensor)
            case (.graph, 11), (.graph, 12), (.graph, 13): return .message(.valueInfo)
            case (.graph, 2), (.graph, 10): return .bytes
            case (.node, 5): return .message(.attribute)
            case (.node, 1), (.node, 2), (.node, 3), (.node, 4), (.node, 6), (.node, 7), (.node, 8): return .bytes
            case (.attribute, 1), (.attribute, 4), (.attribute, 9), (.attribute, 13), (.attribute, 21): return .bytes
            case (.attribute, 7), (.attribute, 8): return .scalars
            case (.tensor, 1), (.tensor, 4), (.tensor, 5), (.tensor, 7), (.tensor, 10), (.tensor, 11): return .scalars
            case (.tensor, 6), (.tensor, 8), (.tensor, 9), (.tensor, 12): return .bytes
            case (.valueInfo, 2): return .message(.type)
            case (.valueInfo, 1), (.valueInfo, 3): return .bytes
            case (.type, 1): return .message(.typeTensor)
            case (.type, 6): return .bytes
            case (.typeTensor, 2): return .message(.shape)
            case (.shape, 1): return .message(.dimension)
            case (.dimension, 2), (.dimension, 3), (.opset, 1), (.entry, 1), (.entry, 2): return .bytes
            default: return nil  // scalars of the schema, or unknown fields (kept as raw bytes)
            }
        }
    }

    /// Estimated bytes protobuf-c allocates for this ModelProto; nil when the wire format is
    /// broken (protobuf-c then refuses the file and says so).
    static func estimate(_ bytes: UnsafeRawBufferPointer) -> Int? {
        try? walk(bytes, 0..<bytes.count, as: .model)
    }

    /// Per-allocation overhead: malloc bookkeeping plus the pointer in a repeated field.
    private static let overhead = 48
    private static let messageSize = 192

    private static func walk(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, as message: Message) throws(WireLayout.Problem) -> Int {
        var total = messageSize
        try WireLayout.forEachField(bytes, in: range) { (number, wireType, _, payload) throws(WireLayout.Problem) in
            let known = message.field(number)
            if let payload {
                switch known {
                case .message(let inner)?:
                    total += try walk(bytes, payload, as: inner) + overhead
                case .scalars?:
                    // Packed: every element may be one byte on the wire and 8 once unpacked.
                    total += payload.count * 8 + overhead
                case .bytes?, nil:
                    total += payload.count + overhead
                }
            } else {
                // A varint or a fixed 64- or 32-bit value; unknown ones are kept as raw bytes.
                let width = wireType == 1 ? 8 : wireType == 5 ? 4 : 0
                total += known == nil ? overhead + width : 8
            }
            guard total < Int.max / 4 else { throw .malformed }
        }
        return total
    }
}
