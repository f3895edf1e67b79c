import IR

/// The string encodings of pickle opcodes: UTF-8 (BINUNICODE), bytes (BINSTRING, decoded as
/// UTF-8 the way `torch.load` asks pickle to), Python-quoted literals (STRING) and
/// raw-unicode-escape lines (UNICODE).
enum PickleText {
    static func utf8(_ raw: UnsafeRawBufferPointer) throws(PickleError) -> String {
        guard let text = String(validating: raw, as: UTF8.self) else { throw PickleError("a string that is not valid UTF-8") }
        return text
    }

    /// Python 2 `str` bytes; invalid UTF-8 is replaced, as no name of ours depends on it.
    static func bytesString(_ raw: UnsafeRawBufferPointer) -> String {
        String(decoding: raw, as: UTF8.self)
    }

    /// `'text'` or `"text"` with Python's backslash escapes.
    static func quoted(_ line: String) throws(PickleError) -> String {
        let scalars = Array(line.trimmingSpaces.unicodeScalars)
        guard scalars.count >= 2, let quote = scalars.first, quote == "'" || quote == "\"", scalars.last == quote else {
            throw PickleError("STRING argument '\(String(line.prefix(40)).escapedForMessage)' is not quoted")
        }
        var out = [UInt8]()
        var i = 1
        let end = scalars.count - 1
        func hexValue(_ s: Unicode.Scalar) -> UInt8? { UInt8(String(s), radix: 16) }
        while i < end {
            let c = scalars[i]
            if c != "\\" {
                out += Array(String(c).utf8)
                i += 1
                continue
            }
            guard i + 1 < end else { throw PickleError("STRING argument ends in a lone backslash") }
            let e = scalars[i + 1]
            i += 2
            switch e {
            case "n": out.append(0x0A)
            case "r": out.append(0x0D)
            case "t": out.append(0x09)
            case "a": out.append(0x07)
            case "b": out.append(0x08)
            case "f": out.append(0x0C)
            case "v": out.append(0x0B)
            case "x":
                guard i + 1 < end, let h = hexValue(scalars[i]), let l = hexValue(scalars[i + 1]) else {
                    throw PickleError("STRING argument has a bad \\x escape")
                }
                out.append(h << 4 | l)
                i += 2
            case "0"..."7":
                var value = Int(e.value - 48)
                var digits = 1
                while digits < 3, i < end, ("0"..."7").contains(scalars[i]) {
                    value = value * 8 + Int(scalars[i].value - 48)
                    i += 1
                    digits += 1
                }
                out.append(UInt8(truncatingIfNeeded: value))
            default:
                // \\, \', \" and anything unknown (Python keeps the backslash for those).
                if e != "\\" && e != "'" && e != "\"" { out.append(UInt8(ascii: "\\")) }
                out += Array(String(e).utf8)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `\uXXXX` and `\UXXXXXXXX` escapes; everything else as it is.
    static func rawUnicodeEscape(_ line: String) -> String {
        guard line.contains("\\") else { return line }
        let scalars = Array(line.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            if scalars[i] == "\\", i + 1 < scalars.count, scalars[i + 1] == "u" || scalars[i + 1] == "U" {
                let width = scalars[i + 1] == "u" ? 4 : 8
                if i + 2 + width <= scalars.count,
                   let value = UInt32(String(String.UnicodeScalarView(scalars[(i + 2)..<(i + 2 + width)])), radix: 16),
                   let scalar = Unicode.Scalar(value) {
                    out.append(scalar)
                    i += 2 + width
                    continue
                }
            }
            out.append(scalars[i])
            i += 1
        }
        return String(out)
    }
}
