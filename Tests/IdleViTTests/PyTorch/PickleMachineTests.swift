import XCTest
@testable import TorchImporter

/// The pickle machine on hand-written opcodes: the limits hold, and values come out as data.
final class PickleMachineTests: XCTestCase {
    /// Small limits, so each can be reached with a few opcodes.
    static let small = PickleLimits(stack: 100, marks: 10, memo: 20, objects: 50, items: 200, string: 64, integerBytes: 16, work: 1_000)

    private func run(_ bytes: [UInt8], limits: PickleLimits = small) throws -> (PickleValue, PickleHeap) {
        try bytes.withUnsafeBytes { raw in
            var machine = PickleMachine(bytes: raw, limits: limits)
            let value = try machine.run()
            return (value, machine.heap)
        }
    }

    private func expectRefusal(_ bytes: [UInt8], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try run(bytes), file: file, line: line) { error in
            let message = (error as? PickleError)?.message ?? "\(error)"
            XCTAssertTrue(message.contains(fragment), message, file: file, line: line)
        }
    }

    /// One byte per character (the opcodes above 0x7F written as \u{80}...).
    private func latin1(_ text: String) -> [UInt8] { text.unicodeScalars.map { UInt8($0.value) } }

    private func unicode(_ text: String) -> [UInt8] {
        let utf8 = Array(text.utf8)
        return [0x58] + withUnsafeBytes(of: UInt32(utf8.count).littleEndian, Array.init) + utf8
    }

    func testDataComesOutAsData() throws {
        // {'a': [1, -2, 3.5, True, None, 'x'], 'big': 2**70} in protocol 2 with memo reuse.
        var pickle: [UInt8] = [0x80, 0x02, 0x7D, 0x71, 0x00] + unicode("a") + [0x5D, 0x71, 0x01, 0x28, 0x4B, 0x01, 0x4A, 0xFE, 0xFF, 0xFF, 0xFF]
        pickle += [0x47, 0x40, 0x0C, 0, 0, 0, 0, 0, 0, 0x88, 0x4E] + unicode("x") + [0x65, 0x73]
        pickle += [0x68, 0x00] + unicode("big") + [0x8A, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x73, 0x2E]
        let (value, heap) = try run(pickle)
        guard case .dict(let d) = value else { return XCTFail("not a dict") }
        XCTAssertEqual(heap.dicts[d].count, 2)
        guard case .list(let l)? = heap.dicts[d].value(forString: "a") else { return XCTFail("no list") }
        XCTAssertEqual(PickleDescription.repr(.list(l), heap: heap) { _ in "" }, "[1, -2, 3.5, True, None, 'x']")
        guard case .bigInt(let bytes)? = heap.dicts[d].value(forString: "big") else { return XCTFail("no big int") }
        XCTAssertEqual(bytes.count, 9)
    }

    func testLimits() {
        let none = { (count: Int) in [UInt8](repeating: 0x4E, count: count) }
        XCTAssertNoThrow(try run([0x80, 0x02] + none(100) + [0x2E]))
        expectRefusal([0x80, 0x02] + none(101) + [0x2E], "stack grows past 100 values")
        expectRefusal([0x80, 0x02] + [UInt8](repeating: 0x28, count: 11) + [0x2E], "more than 10 nested MARKs")
        expectRefusal([0x80, 0x02] + Array(repeating: [0x5D, 0x30], count: 51).flatMap { $0 } + [0x4E, 0x2E], "more than 50 containers")
        expectRefusal([0x80, 0x02, 0x28] + none(90) + [0x6C, 0x28] + none(90) + [0x6C, 0x28] + none(90) + [0x6C, 0x2E], "hold more than 200 items")
        expectRefusal([0x80, 0x02, 0x8C, 65] + [UInt8](repeating: 0x41, count: 65) + [0x2E], "a string of 65 bytes")
        expectRefusal([0x80, 0x02, 0x8A, 17] + [UInt8](repeating: 1, count: 17) + [0x2E], "an integer of 17 bytes")
        expectRefusal([0x80, 0x02] + Array(repeating: [0x4E, 0x30], count: 600).flatMap { $0 } + [0x4E, 0x2E], "more than 1000 opcodes")
        // And the real limits are what TorchLimits says.
        XCTAssertEqual(PickleLimits().memo, 1 << 20)
        XCTAssertEqual(PickleLimits().stack, 1 << 20)
        expectRefusal([0x80, 0x02, 0x2E], "pops from an empty stack")
        expectRefusal([0x80, 0x02, 0x4E, 0x28, 0x2E], "pops from an empty stack")  // STOP below a MARK
        var memo: [UInt8] = [0x80, 0x02, 0x4E]
        for i in 0...20 { memo += [0x72] + withUnsafeBytes(of: UInt32(i * 1_000_000).littleEndian, Array.init) }
        expectRefusal(memo + [0x2E], "memo grows past 20 entries")
        // One index overwritten many times is one entry.
        XCTAssertNoThrow(try run([0x80, 0x02, 0x4E] + Array(repeating: [0x71, 0x07], count: 100).flatMap { $0 } + [0x2E], limits: PickleLimits()))
        expectRefusal([0x80, 0x02, 0x8D, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0x2E], "over the limit")
        expectRefusal([0x80, 0x06, 0x4E, 0x2E], "protocol 6")
        expectRefusal([0x80, 0x02, 0x82, 0x01, 0x2E], "EXT")
        expectRefusal([0x80, 0x02, 0x97, 0x2E], "out-of-band")
        expectRefusal([0x80, 0x02, 0xFF, 0x2E], "unknown opcode 0xff")
        expectRefusal([0x80, 0x02, 0x4E, 0x95, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0x2E], "runs past the end")
        // A recognised callable asked to allocate is refused, not run.
        expectRefusal(latin1("\u{80}\u{02}ctorch\nFloatStorage\nK\u{05}\u{85}R."), "a checkpoint never constructs one")
        // APPEND / SETITEM / BUILD on something that cannot take them.
        expectRefusal([0x80, 0x02, 0x4B, 0x01, 0x4E, 0x61, 0x2E], "APPEND to the integer 1")
        expectRefusal([0x80, 0x02, 0x5D, 0x4E, 0x4E, 0x73, 0x2E], "SETITEM on a list")
    }

    /// Globals that run code or open files are refused by name, with their enclosing packages.
    func testCodeRunningGlobalsAreRefused() {
        for (module, name) in [("os.path", "join"), ("torch.hub.helpers", "load"), ("builtins", "__import__"), ("nt", "system"),
                               ("timeit", "timeit"), ("operator", "methodcaller"), ("_io", "open")] {
            expectRefusal(latin1("\u{80}\u{02}c\(module)\n\(name)\nN."), "refers to \(module).\(name)")
        }
        // torch's own globals and ordinary ones are not.
        for (module, name) in [("torch._utils", "_rebuild_tensor_v2"), ("argparse", "Namespace"), ("builtins", "getattr"), ("pathlib", "PosixPath")] {
            XCTAssertNoThrow(try run(latin1("\u{80}\u{02}c\(module)\n\(name)\n.")), "\(module).\(name)")
        }
    }

    /// Unknown globals stay names; nothing is imported (a module that does not exist is fine).
    func testUnknownGlobalsAreInert() throws {
        let pickle = latin1("\u{80}\u{02}cno_such_module\nthing\nK\u{01}\u{85}R}bN\u{86}.")
        let (value, heap) = try run(pickle)
        guard case .tuple(let t) = value, case .object(let o) = heap.tuples[t][0] else { return XCTFail("\(value)") }
        XCTAssertEqual(heap.objects[o].via, "REDUCE")
        XCTAssertEqual(heap.globalName(of: .object(o))?.description, "no_such_module.thing")
    }
}
