extension String {
    /// Text from a file made safe for a one-line message: control and format characters, line
    /// and paragraph separators become `\u{..}` escapes (a dataset name with a newline cannot
    /// break the line, a bidi override cannot disguise it), and so does the backslash, which
    /// keeps the escaping one-to-one: distinct names stay distinct after it.
    public var escapedForMessage: String { escapingScalars(where: \.needsMessageEscape) }

    /// The scalars `escape` picks written as `\u{..}`, the others as they are.
    fileprivate func escapingScalars(where escape: (Unicode.Scalar) -> Bool) -> String {
        guard unicodeScalars.contains(where: escape) else { return self }
        var result = ""
        for scalar in unicodeScalars {
            if escape(scalar) {
                result += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}

extension Unicode.Scalar {
    /// Control, format, line or paragraph separator characters: never shown as they are.
    public var isUnprintable: Bool {
        switch properties.generalCategory {
        case .control, .lineSeparator, .paragraphSeparator, .format: return true
        default: return false
        }
    }

    fileprivate var needsMessageEscape: Bool { isUnprintable || value == 0x5C }
}

extension String {
    /// A whole message made safe to print as one line, for text that may already hold
    /// `escapedForMessage` output: line breaks become "; " and any control or format
    /// character left is escaped, but backslashes stay as they are (escaping them again would
    /// mangle the escapes already there). The last gate before stderr, so a rejection is
    /// exactly one line whatever reached it.
    public var lineSafe: String {
        let lines = split(whereSeparator: { $0.isNewline }).map { line in
            line.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed()
        }.map { String($0) }.filter { !$0.isEmpty }
        return lines.joined(separator: "; ").escapingScalars(where: \.isUnprintable)
    }
}
