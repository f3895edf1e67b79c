import IR

/// Labels from a CSV file, `--labels-file` (at most `Limits.textFileBytes`; ImageNet's 50,000
/// validation lines are ~2 MB): one `path,label` record per line, paths relative to
/// the image folder, labels a class index or an ImageNet-1k WordNet id. An optional first line
/// `path,label` is a header. Fields may be double-quoted (RFC 4180: `""` is a quote inside a
/// quoted field; a quoted field may hold commas and line breaks). Blank lines are skipped.
///
/// Written here rather than taken from a package: the format is two columns, the mirror has no
/// CSV library, and the checks (confined paths, line numbers in every message) are the point.
public enum LabelsFile {
    public static func read(_ csvPath: String, imageFolder: String, classes: Int) throws(EvaluationError) -> LabelledImages {
        let bytes: [UInt8]
        do { bytes = try RegularFile.read(csvPath, limit: Limits.textFileBytes) } catch {
            throw .labelsFile(path: csvPath, line: 0, reason: "cannot read the labels file: \(error.reason)")
        }
        try requireFolder(imageFolder)
        let records: [CSVRecord]
        do { records = try CSVRecord.parse(bytes) } catch {
            throw .labelsFile(path: csvPath, line: error.line, reason: error.reason)
        }
        var files: [LabelledFile] = []
        var seen: [String: Int] = [:]
        for (position, record) in records.enumerated() {
            func fail(_ reason: String) -> EvaluationError { .labelsFile(path: csvPath, line: record.line, reason: reason) }
            guard record.fields.count == 2 else {
                throw fail("expected 2 fields (path,label), found \(record.fields.count)")
            }
            let (path, labelText) = (record.fields[0], record.fields[1])
            if position == 0, path.lowercased() == "path", labelText.lowercased() == "label" { continue }
            guard let label = ClassLabel(labelText) else {
                throw fail("label '\(labelText.escapedForMessage)' is neither a class index nor an ImageNet-1k WordNet id"
                           + (position == 0 ? " (a header line must be 'path,label')" : ""))
            }
            let index: Int
            switch label.classIndex(classes: classes) {
            case .success(let value): index = value
            case .failure(let problem): throw fail(problem.description)
            }
            if let problem = pathProblem(path) { throw fail("path '\(path.escapedForMessage)': \(problem)") }
            if let first = seen[path] { throw fail("'\(path.escapedForMessage)' is listed twice (lines \(first) and \(record.line))") }
            seen[path] = record.line
            files.append(LabelledFile(path: joinPath(imageFolder, path), label: index))
        }
        guard !files.isEmpty else { throw .labelsFile(path: csvPath, line: 0, reason: "the labels file lists no images") }
        return LabelledImages(sorting: files, layout: .labelsFile)
    }

    /// Paths stay inside the image folder: relative, no `..`, no NUL.
    static func pathProblem(_ path: String) -> String? {
        if path.isEmpty { return "empty" }
        if path.hasPrefix("/") { return "absolute; paths are relative to the image folder (--images)" }
        if path.utf8.contains(0) { return "contains a NUL byte" }
        if path.split(separator: "/").contains("..") { return "'..' leaves the image folder (--images)" }
        return nil
    }
}

/// One CSV record and the line it starts on.
struct CSVRecord {
    var line: Int
    var fields: [String]

    struct Failure: Error {
        var line: Int
        var reason: String
    }

    /// RFC 4180 records of `bytes` (UTF-8). Unquoted fields are trimmed of spaces and tabs;
    /// empty lines are skipped.
    static func parse(_ bytes: [UInt8]) throws(Failure) -> [CSVRecord] {
        var records: [CSVRecord] = []
        var fields: [String] = []
        var field: [UInt8] = []
        var quoted = false        // inside a quoted field
        var wasQuoted = false     // the current field was quoted (no trimming, no more text)
        var line = 1, recordLine = 1
        var i = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0  // a UTF-8 byte order mark
        func text(_ raw: [UInt8], line: Int) throws(Failure) -> String {
            guard let s = String(validating: raw, as: UTF8.self) else { throw Failure(line: line, reason: "not valid UTF-8") }
            return s
        }
        func endField() throws(Failure) {
            var raw = field
            if !wasQuoted {
                while let last = raw.last, last == 0x20 || last == 0x09 { raw.removeLast() }
                raw = Array(raw.drop { $0 == 0x20 || $0 == 0x09 })
            }
            fields.append(try text(raw, line: recordLine))
            field.removeAll(keepingCapacity: true)
            wasQuoted = false
        }
        func endRecord() throws(Failure) {
            try endField()
            if !(fields.count == 1 && fields[0].isEmpty) { records.append(CSVRecord(line: recordLine, fields: fields)) }
            fields.removeAll()
        }
        while i < bytes.count {
            let b = bytes[i]
            if quoted {
                if b == 0x22 {
                    if i + 1 < bytes.count, bytes[i + 1] == 0x22 { field.append(0x22); i += 2; continue }
                    quoted = false
                } else {
                    if b == 0x0A { line += 1 }
                    field.append(b)
                }
                i += 1
                continue
            }
            switch b {
            case 0x22:
                guard field.allSatisfy({ $0 == 0x20 || $0 == 0x09 }), !wasQuoted else {
                    throw Failure(line: line, reason: "a quote (\") inside an unquoted field; quote the whole field and double the quote")
                }
                field.removeAll()
                quoted = true
                wasQuoted = true
            case 0x2C:
                try endField()
            case 0x0A, 0x0D:
                if b == 0x0D, i + 1 < bytes.count, bytes[i + 1] == 0x0A { i += 1 }
                try endRecord()
                line += 1
                recordLine = line
            default:
                if wasQuoted, b != 0x20, b != 0x09 {
                    throw Failure(line: line, reason: "text after the closing quote of a field")
                }
                if !wasQuoted { field.append(b) }
            }
            i += 1
        }
        if quoted { throw Failure(line: recordLine, reason: "a quoted field is not closed") }
        if !field.isEmpty || !fields.isEmpty || wasQuoted { try endRecord() }
        return records
    }
}
