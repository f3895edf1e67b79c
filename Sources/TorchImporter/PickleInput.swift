import IR

/// The bytes of one pickle and a cursor over them: opcode arguments read with every length
/// checked against what is left and against the string and integer limits.
struct PickleInput {
    let bytes: UnsafeRawBufferPointer
    private(set) var position: Int
    let limits: PickleLimits

    init(bytes: UnsafeRawBufferPointer, position: Int, limits: PickleLimits) {
        self.bytes = bytes
        self.position = position
        self.limits = limits
    }

    var remaining: Int { bytes.count - position }

    mutating func readByte() throws(PickleError) -> UInt8 {
        guard position < bytes.count else { throw PickleError("the pickle ends before its STOP opcode") }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func readRaw(_ count: Int) throws(PickleError) -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else { throw PickleError("needs \(count) bytes, the pickle has \(remaining) left") }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: bytes[position ..< position + count])
    }

    /// A little-endian unsigned integer of `width` bytes.
    mutating func readUInt(_ width: Int) throws(PickleError) -> UInt64 {
        let raw = try readRaw(width)
        var value: UInt64 = 0
        for (i, byte) in raw.enumerated() { value |= UInt64(byte) << (8 * UInt64(i)) }
        return value
    }

    /// Bytes preceded by their length (`width` bytes, little-endian), within the string limit.
    mutating func readSized(width: Int) throws(PickleError) -> UnsafeRawBufferPointer {
        let length = try readUInt(width)
        guard length <= UInt64(limits.string) else {
            throw PickleError("a string of \(length) bytes, over the limit of \(limits.string)")
        }
        return try readRaw(Int(length))
    }

    mutating func readSized(signedWidth width: Int) throws(PickleError) -> UnsafeRawBufferPointer {
        let length = Int32(truncatingIfNeeded: try readUInt(width))
        guard length >= 0 else { throw PickleError("a string with a negative length") }
        guard length <= limits.string else { throw PickleError("a string of \(length) bytes, over the limit of \(limits.string)") }
        return try readRaw(Int(length))
    }

    /// A text argument up to its newline (protocol 0 opcodes).
    mutating func readLine() throws(PickleError) -> String {
        let start = position
        let limit = min(bytes.count, start + limits.string)
        var end = start
        while end < limit, bytes[end] != UInt8(ascii: "\n") { end += 1 }
        guard end < limit else { throw PickleError("a text argument without its newline") }
        position = end + 1
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
    }

    static func decimal(_ text: String) throws(PickleError) -> Int {
        guard let value = Int(text.trimmingSpaces) else {
            throw PickleError("'\(String(text.prefix(40)).escapedForMessage)' is not an integer that fits in 64 bits")
        }
        return value
    }

    /// LONG1 / LONG4: little-endian two's complement; wider than 64 bits stays bytes.
    mutating func longValue(count: Int) throws(PickleError) -> PickleValue {
        guard count <= limits.integerBytes else {
            throw PickleError("an integer of \(count) bytes, over the limit of \(limits.integerBytes)")
        }
        let raw = try readRaw(count)
        guard count > 0 else { return .int(0) }
        if count > 8 { return .bigInt(Array(raw)) }
        var value: UInt64 = 0
        for (i, byte) in raw.enumerated() { value |= UInt64(byte) << (8 * UInt64(i)) }
        if count < 8, raw[count - 1] & 0x80 != 0 { value |= ~UInt64(0) << (8 * UInt64(count)) }
        return .int(Int(Int64(bitPattern: value)))
    }
}
