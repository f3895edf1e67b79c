import Foundation
import XCTest
import IR
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Replays every case of `Fixtures/hostile/manifest.json` (written by make_hostile.py) through
/// the built `idlevit`, each in a fresh folder, in a child limited by `setrlimit` (RLIMIT_DATA
/// 1 GiB: heap and anonymous memory, not the read-only maps of weights) and a wall-clock
/// limit. A rejection must exit 2 with exactly one stderr line free of control characters, no
/// signal, and leave the folder exactly as the case's setup made it: no output, no temporary
/// file, no input replaced. Controls (`expect` 0) prove the setup can pass.
final class HostileCorpusTests: XCTestCase {
    /// Heap + anonymous memory of one child.
    static let dataLimitKiB = 1 << 20
    /// Wall-clock seconds per case (the debug build is ~10x slower than release).
    static let timeLimit: Double = 30

    // Read-only once loaded; `Any` in the setup dictionaries is only JSON values.
    struct Case: @unchecked Sendable {
        var name: String
        var kind: String
        var setup: [[String: Any]]
        var args: [String]
        var expect: Int32
        var stderrContains: String?
        var stdoutClean: Bool
        var timeLimit: Double
    }

    static func loadCases() throws -> [Case] {
        let url = URL(fileURLWithPath: TestPaths.fixture("hostile/manifest.json"))
        let root = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let cases = try XCTUnwrap(root["cases"] as? [[String: Any]])
        return try cases.map { entry in
            Case(name: try XCTUnwrap(entry["name"] as? String), kind: entry["class"] as? String ?? "",
                 setup: entry["setup"] as? [[String: Any]] ?? [], args: try XCTUnwrap(entry["args"] as? [String]),
                 expect: Int32(entry["expect"] as? Int ?? 2), stderrContains: entry["stderr_contains"] as? String,
                 stdoutClean: entry["stdout_clean"] as? Bool ?? false,
                 timeLimit: min(timeLimit, entry["time_limit"] as? Double ?? timeLimit))
        }
    }

    /// Every committed file of Fixtures/hostile/ is used by some case (nothing dead, nothing
    /// untested), except the generators and the manifest.
    func testEveryHostileFileIsInTheManifest() throws {
        let root = TestPaths.fixture("hostile")
        let manifest = try String(contentsOfFile: root + "/manifest.json", encoding: .utf8)
        let enumerator = try XCTUnwrap(FileManager.default.enumerator(atPath: root))
        var unused: [String] = []
        while let relative = enumerator.nextObject() as? String {
            var isFolder: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: root + "/" + relative, isDirectory: &isFolder)
            if isFolder.boolValue || ["manifest.json", "make_hostile.py", "README.md"].contains(relative) { continue }
            if !manifest.contains("hostile/" + relative + "\"") { unused.append(relative) }
        }
        XCTAssertEqual(unused, [], "files in Fixtures/hostile/ that no manifest case uses")
    }

    func testHostileCorpus() throws {
        let cases = try Self.loadCases()
        XCTAssertGreaterThan(cases.count, 100)
        let failures = Mutex<[String]>([])
        let started = Date()
        // Cases that take seconds by design (a reader timeout, a decoder stopped by a budget)
        // start first, so the queue does not end on a long tail; each worker mostly waits for
        // its child, so a few more workers than cores keeps both cores busy.
        let ordered = cases.filter { $0.kind == "hang" } + cases.filter { $0.kind != "hang" }
        let next = Mutex(0)
        let workers = max(2, ProcessInfo.processInfo.activeProcessorCount * 2)
        let done = DispatchGroup()
        for _ in 0..<workers {
            done.enter()
            Thread {
                defer { done.leave() }
                while true {
                    let index = next.withLock { value in
                        defer { value += 1 }
                        return value
                    }
                    guard index < ordered.count else { return }
                    let item = ordered[index]
                    let problems = Self.replay(item)
                    if !problems.isEmpty { failures.withLock { $0.append("\(item.name) [\(item.kind)]: " + problems.joined(separator: "; ")) } }
                }
            }.start()
        }
        done.wait()
        for failure in failures.withLock({ $0 }).sorted() { XCTFail(failure) }
        print("hostile corpus: \(cases.count) cases in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }

    // MARK: one case

    static func replay(_ item: Case) -> [String] {
        let folder = TestPaths.temporaryFolder()
        let logs = TestPaths.temporaryFolder()
        defer {
            try? FileManager.default.removeItem(at: folder)
            try? FileManager.default.removeItem(at: logs)
        }
        let tmp = folder.path
        do { try setUp(item.setup, in: tmp) } catch { return ["setup failed: \(error)"] }
        let before = snapshot(tmp)
        let args = item.args.map { substitute($0, tmp: tmp) }
        let outPath = logs.appendingPathComponent("stdout").path, errPath = logs.appendingPathComponent("stderr").path
        XCTAssertTrue(FileManager.default.createFile(atPath: outPath, contents: nil), "cannot create a test file")
        XCTAssertTrue(FileManager.default.createFile(atPath: errPath, contents: nil), "cannot create a test file")

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        // setrlimit in the child, then exec: the limits apply to idlevit itself.
        process.arguments = ["-c", "ulimit -d \(dataLimitKiB) && exec \"$0\" \"$@\"", TestPaths.executable.path] + args
        process.currentDirectoryURL = folder
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: outPath)
        process.standardError = FileHandle(forWritingAtPath: errPath)
        let finished = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in finished.signal() }
        let start = Date()
        do { try process.run() } catch { return ["cannot start: \(error)"] }
        var problems: [String] = []
        if finished.wait(timeout: .now() + item.timeLimit) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            finished.wait()
            problems.append("no answer within \(Int(item.timeLimit)) s (a hang)")
        }
        let seconds = Date().timeIntervalSince(start)
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "<not UTF-8>"
        let stdout = (try? Data(contentsOf: URL(fileURLWithPath: outPath))).map { String(decoding: $0, as: UTF8.self) } ?? ""
        if process.terminationReason == .uncaughtSignal {
            problems.append("killed by signal \(process.terminationStatus)")
        } else if process.terminationStatus != item.expect {
            problems.append("exit \(process.terminationStatus), expected \(item.expect)")
        }
        if item.expect == 2 {
            let lines = stderr.split(separator: "\n", omittingEmptySubsequences: false)
            if lines.count != 2 || !lines[1].isEmpty {
                problems.append("stderr is \(lines.count - 1) lines, not one")
            } else if !stderr.hasPrefix("idlevit: error: ") {
                problems.append("stderr does not start with 'idlevit: error: '")
            }
            if stderr.dropLast().unicodeScalars.contains(where: { $0.isUnprintable }) {
                problems.append("stderr holds control or format characters")
            }
            if let fragment = item.stderrContains, !stderr.contains(fragment) {
                problems.append("stderr does not mention '\(fragment)'")
            }
        }
        if item.stdoutClean, stdout.unicodeScalars.contains(where: { $0.isUnprintable && $0 != "\n" && $0 != "\t" }) {
            problems.append("stdout holds control characters")
        }
        let after = snapshot(tmp)
        if after != before {
            let changed = Set(before.keys).symmetricDifference(after.keys).union(before.keys.filter { after[$0] != nil && after[$0] != before[$0] })
            problems.append("the folder changed: \(changed.sorted().map { $0.escapedForMessage })")
        }
        if !problems.isEmpty {
            problems.append(String(format: "%.1f s", seconds))
            problems.append("stderr: \(String(stderr.prefix(300)).escapedForMessage)")
        }
        return problems
    }

    static func substitute(_ text: String, tmp: String) -> String {
        text.replacingOccurrences(of: "{tmp}", with: tmp)
            .replacingOccurrences(of: "{fixtures}", with: TestPaths.packageRoot.appendingPathComponent("Fixtures").path)
    }

    /// name -> (size, mtime, inode) of every entry under `root`, not following symlinks.
    static func snapshot(_ root: String) -> [String: [Int]] {
        var result: [String: [Int]] = [:]
        func walk(_ relative: String) {
            let path = relative.isEmpty ? root : root + "/" + relative
            var info = stat()
            guard lstat(path, &info) == 0 else { return }
            if !relative.isEmpty {
                result[relative] = [Int(info.st_size), Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec), Int(info.st_ino)]
            }
            if (info.st_mode & S_IFMT) == S_IFDIR, let names = try? FileManager.default.contentsOfDirectory(atPath: path) {
                for name in names { walk(relative.isEmpty ? name : relative + "/" + name) }
            }
        }
        walk("")
        return result
    }

    struct SetupError: Error, CustomStringConvertible {
        var description: String
    }

    /// Makes what a case needs in `tmp`: copies (optionally extended with a hole to `size`),
    /// sparse files, FIFOs, folders, symbolic and hard links, a chunk repeated, a header of
    /// many zero-size tensors.
    static func setUp(_ actions: [[String: Any]], in tmp: String) throws {
        let fixtures = TestPaths.packageRoot.appendingPathComponent("Fixtures").path
        for action in actions {
            guard let to = action["to"] as? String ?? action["fifo"] as? String ?? action["dir"] as? String ?? action["sparse"] as? String else {
                throw SetupError(description: "action without a target: \(action)")
            }
            let path = tmp + "/" + to
            if let source = action["copy"] as? String {
                try FileManager.default.copyItem(atPath: fixtures + "/" + source, toPath: path)
                if let size = action["size"] as? Int { guard truncate(path, off_t(size)) == 0 else { throw SetupError(description: "truncate \(to)") } }
            } else if action["fifo"] != nil {
                guard mkfifo(path, 0o644) == 0 else { throw SetupError(description: "mkfifo \(to)") }
            } else if action["dir"] != nil {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            } else if let size = action["size"] as? Int, action["sparse"] != nil {
                guard FileManager.default.createFile(atPath: path, contents: nil) else { throw SetupError(description: "create \(to)") }
                guard truncate(path, off_t(size)) == 0 else { throw SetupError(description: "truncate \(to)") }
            } else if let target = action["link"] as? String {
                guard symlink(substitute(target, tmp: tmp), path) == 0 else { throw SetupError(description: "symlink \(to)") }
            } else if let source = action["hardlink"] as? String {
                guard link(tmp + "/" + source, path) == 0 else { throw SetupError(description: "link \(to)") }
            } else if let chunk = action["repeat"] as? String, let count = action["count"] as? Int {
                let head = try (action["head"] as? String).map { try Data(contentsOf: URL(fileURLWithPath: fixtures + "/" + $0)) } ?? Data()
                let body = try Data(contentsOf: URL(fileURLWithPath: fixtures + "/" + chunk))
                let tail = try (action["tail"] as? String).map { try Data(contentsOf: URL(fileURLWithPath: fixtures + "/" + $0)) } ?? Data()
                guard FileManager.default.createFile(atPath: path, contents: head) else { throw SetupError(description: "create \(to)") }
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
                try handle.seekToEnd()
                for _ in 0..<count { try handle.write(contentsOf: body) }
                try handle.write(contentsOf: tail)
                try handle.close()
            } else if let count = action["zero_tensors"] as? Int {
                var json = "{"
                for i in 0..<count { json += (i > 0 ? "," : "") + "\"t\(i)\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}" }
                json += "}"
                var bytes = withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { Array($0) }
                bytes += Array(json.utf8)
                guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { throw SetupError(description: "create \(to)") }
            } else {
                throw SetupError(description: "unknown action \(action)")
            }
        }
    }
}
