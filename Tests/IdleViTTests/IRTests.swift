import XCTest
@testable import IR

final class IRTests: XCTestCase {
    func testJSONParserRejectsDuplicatesAndDeepNesting() {
        XCTAssertThrowsError(try JSONParser.parse("{\"a\":1,\"a\":2}"))
        XCTAssertThrowsError(try JSONParser.parse(String(repeating: "[", count: 100) + String(repeating: "]", count: 100)))
        XCTAssertThrowsError(try JSONParser.parse("{\"a\":01}"))
        XCTAssertThrowsError(try JSONParser.parse("{\"a\":1} x"))
        XCTAssertEqual(try JSONParser.parse("{\"s\":\"\\u00e9\\n\",\"n\":-1.5e3}")["s"], .string("é\n"))
    }

    func testJSONRoundTripKeepsNumbersExact() throws {
        let text = "{\"big\":18446744073709551615,\"eps\":1e-06,\"list\":[1,2.5,\"x\",null,true]}"
        let value = try JSONParser.parse(text)
        XCTAssertEqual(JSONWriter.write(value), text)
        XCTAssertNil(value["big"]?.intValue, "beyond Int is not silently truncated")
    }

    func testGraphBuilderInfersTypesAndValidatorCatchesBadGraphs() throws {
        let x = GraphInput(name: "x", type: .batched(4, 8))
        let w = Constant(name: "w", tensor: FloatTensor(shape: [3, 8], values: Array(repeating: 0.5, count: 24)))
        let b = Constant(name: "b", tensor: FloatTensor(shape: [3], values: [1, 2, 3]))
        var builder = GraphBuilder(Graph(inputs: [x], constants: [w, b]))
        try builder.add("y", .linear, ["x", "w", "b"])
        XCTAssertEqual(builder.graph.nodes[0].type, .batched(4, 3))
        var graph = builder.graph
        graph.outputs = ["y"]
        XCTAssertNoThrow(try GraphValidator.validate(graph))

        var wrongType = graph
        wrongType.nodes[0].type = .batched(4, 4)
        XCTAssertThrowsError(try GraphValidator.validate(wrongType))
        var undefined = graph
        undefined.nodes[0].inputs[0] = "nope"
        XCTAssertThrowsError(try GraphValidator.validate(undefined))
        var badOutput = graph
        badOutput.outputs = ["z"]
        XCTAssertThrowsError(try GraphValidator.validate(badOutput))
        XCTAssertThrowsError(try builder.add("bad", .linear, ["y", "w", "b"]), "3 features into an 8-feature weight")
    }

    /// Prefetching and evicting pages of a file map keeps its contents; evicting owned memory
    /// (converted tensors) is refused, since its pages cannot be read back.
    func testStoragePrefaultAndEvictKeepContents() throws {
        let folder = TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("pages.bin").path
        let bytes = (0..<(3 << 20) + 123).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 12) }
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let mapped = try TensorStorage.map(path: file)
        XCTAssertTrue(mapped.isFileMap)
        // Ranges that start and end inside pages, so the whole-page rounding is exercised.
        for range in [0..<mapped.byteCount, 100..<5000, 4095..<(2 << 20) + 7, (3 << 20)..<mapped.byteCount] {
            mapped.prefault(mapped.bytes(range))
            XCTAssertEqual(Array(mapped.bytes(range)), Array(bytes[range]))
            mapped.evict(mapped.bytes(range))
            XCTAssertEqual(Array(mapped.bytes(range)), Array(bytes[range]), "read back after evicting \(range)")
        }
        let owned = TensorStorage.copying((0..<(1 << 20)).map { Float($0) })
        XCTAssertFalse(owned.isFileMap)
        owned.evict(owned.bytes(0..<owned.byteCount))
        XCTAssertEqual(owned.base.assumingMemoryBound(to: Float.self)[(1 << 20) - 1], Float((1 << 20) - 1))
        XCTAssertEqual(owned.base.assumingMemoryBound(to: Float.self)[12345], 12345)
    }
}
