import Foundation
import XCTest
import IR
import Importers
import IdleViTKit

/// Paths into the committed fixtures and the built `idlevit` binary.
enum TestPaths {
    static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        fatalError("Package.swift not found above \(#filePath)")
    }()

    static func fixture(_ relative: String) -> String {
        packageRoot.appendingPathComponent("Fixtures").appendingPathComponent(relative).path
    }

    /// The `idlevit` executable built next to the test bundle.
    static var executable: URL {
        let candidates = [
            Bundle.main.bundleURL.appendingPathComponent("idlevit"),
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("idlevit"),
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("idlevit"),
        ]
        for url in candidates where FileManager.default.isExecutableFile(atPath: url.path) { return url }
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            let url = bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("idlevit")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        fatalError("idlevit executable not found next to the tests")
    }

    /// A fresh temporary folder, removed by the caller or at exit.
    static func temporaryFolder() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("idlevit-tests-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// Result of running the CLI.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `idlevit` with arguments, capturing output.
func runIdleViT(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> CommandResult {
    let process = Process()
    process.executableURL = TestPaths.executable
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read both pipes concurrently so a large output cannot block the child.
    let outBox = DataBox()
    let reader = out.fileHandleForReading
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        outBox.data = reader.readDataToEndOfFile()
        group.leave()
    }
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    let outData = outBox.data
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// Carries pipe bytes from the reader thread; the DispatchGroup orders the accesses.
final class DataBox: @unchecked Sendable {
    var data = Data()
}

/// SplitMix64: a small seeded generator, so corruption corpora are the same on every run.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// How every importer must refuse a bad file: a one-line message that starts with the file's
/// name, and from the CLI exit status 2.
extension XCTestCase {
    /// Loads `path`, expecting that message (containing `fragment` when given); returns it.
    @discardableResult
    func expectLoadError(_ path: String, mentioning fragment: String? = nil,
                         file: StaticString = #filePath, line: UInt = #line) -> String {
        do throws(ImportError) {
            _ = try ModelLoader.load(path)
            XCTFail("\(path) was accepted", file: file, line: line)
            return ""
        } catch {
            let message = error.description
            XCTAssertEqual(message.split(separator: "\n").count, 1, message, file: file, line: line)
            XCTAssertTrue(message.hasPrefix(displayName(path) + ": "), message, file: file, line: line)
            if let fragment {
                XCTAssertTrue(message.contains(fragment), "'\(fragment)' not in: \(message)", file: file, line: line)
            }
            return message
        }
    }

    /// `idlevit inspect path` exits 2 with one line on stderr naming the file.
    func expectExit2(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try runIdleViT(["inspect", path])
        XCTAssertEqual(result.status, 2, result.stdout + result.stderr, file: file, line: line)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr, file: file, line: line)
        XCTAssertTrue(result.stderr.contains(displayName(path)), result.stderr, file: file, line: line)
    }
}

/// `ours` holds exactly `expected`'s tensors: the same names and shapes, Float32 bit for bit.
func assertSameWeights(_ ours: WeightSet, _ expected: WeightSet, _ label: String,
                       file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(Set(ours.names), Set(expected.names), label, file: file, line: line)
    for weight in expected.weights {
        guard let mine = ours[weight.name] else { continue }
        XCTAssertEqual(mine.shape, weight.shape, "\(label): \(weight.name)", file: file, line: line)
        XCTAssertTrue(mine.tensor.buffer.elementsEqual(weight.tensor.buffer) { $0.bitPattern == $1.bitPattern },
                      "\(label): \(weight.name) differs", file: file, line: line)
    }
}

extension XCTestCase {
    /// `idlevit verify` of `model` against `reference` passes (exit 0) with every activation
    /// within tolerance and the logits within 1e-4; returns the JSON report.
    @discardableResult
    func verify(_ model: String, reference: String, input: String, extra: [String] = [],
                file: StaticString = #filePath, line: UInt = #line) throws -> JSONValue {
        let result = try runIdleViT(["verify", model, "--input", input, "--reference", reference, "--json"] + extra)
        XCTAssertEqual(result.status, 0, "\(model) vs \(reference): \(result.stderr)\n\(result.stdout)", file: file, line: line)
        let json = try JSONParser.parse(result.stdout)
        XCTAssertEqual(json["passed"], .bool(true), file: file, line: line)
        let activations = json["activations"]?.arrayValue ?? []
        XCTAssertFalse(activations.isEmpty, "compared something", file: file, line: line)
        for activation in activations {
            XCTAssertEqual(activation["passed"], .bool(true), "\(activation["name"]!) in \(model)", file: file, line: line)
        }
        let logits = activations.first { $0["name"]?.stringValue == "logits" }
        XCTAssertNotNil(logits, "logits compared", file: file, line: line)
        XCTAssertLessThanOrEqual(logits?["max_abs_error"]?.doubleValue ?? 1, 1e-4, "\(model) logits", file: file, line: line)
        return json
    }
}
