import Foundation
import IR

/// Column-aligned text tables.
struct Table {
    var headers: [String]
    var rows: [[String]] = []
    /// Columns whose text aligns right (numbers).
    var rightAligned: Set<Int> = []

    mutating func add(_ row: [String]) { rows.append(row) }

    func render() -> String {
        var widths = headers.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: max(0, widths[i] - cell.count))
                return rightAligned.contains(i) ? pad + cell : cell + pad
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        var out = [line(headers), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
        out += rows.map(line)
        return out.joined(separator: "\n") + "\n"
    }
}

func printJSON(_ value: JSONValue) {
    print(JSONWriter.write(value, pretty: true))
}

func scientific(_ value: Double) -> String {
    if value.isNaN { return "nan" }
    if value.isInfinite { return "inf" }
    return String(format: "%.3e", value)
}

func fixed(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }

func grouped(_ value: Int) -> String {
    let digits = String(value)
    var out = ""
    for (i, c) in digits.reversed().enumerated() {
        if i > 0, i % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return String(out.reversed())
}

/// A JSON number that stays valid JSON for infinities and NaN (written as null).
func jsonNumber(_ value: Double) -> JSONValue { value.isFinite ? .double(value) : .null }
