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
        try builder.add("y", .linear(.full), ["x", "w", "b"])
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
        XCTAssertThrowsError(try builder.add("bad", .linear(.full), ["y", "w", "b"]), "3 features into an 8-feature weight")
        try builder.add("y_no_bias", .linear(.full), ["x", "w"])
        XCTAssertEqual(builder.graph.nodes[1].type, .batched(4, 3), "the bias is optional")
    }

    /// Attributes are typed values, validated once when an op is made or read back: the JSON
    /// form round-trips, and a missing, unknown, mistyped or out-of-range attribute is an error
    /// naming the op, never a default.
    func testOpAttributesAreTypedAndValidatedOnDecode() throws {
        let ops: [Op] = [.patchEmbed(try PatchEmbed(patch: 16)), .layerNorm(try LayerNorm(eps: 1e-6)),
                         .linear(try Linear(rows: 64..<128)), .linear(.full), .attention(try Attention(heads: 6)),
                         .tokenSelect(try TokenSelect(heads: 6, keep: 137, prefix: 2)), .takeToken(try TakeToken(index: 1)),
                         .add, .scale, .gelu, .mean, .concatTokens, .gatherTokens, .scatterTokens]
        for op in ops {
            XCTAssertEqual(try Op.decode(kind: op.kind, attributes: op.attributeList), op)
        }
        func rejects(_ kind: OpKind, _ attributes: [(key: String, value: AttributeValue)], _ fragment: String,
                     line: UInt = #line) {
            XCTAssertThrowsError(try Op.decode(kind: kind, attributes: attributes), line: line) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error)", line: line)
            }
        }
        rejects(.attention, [], "needs an integer attribute 'heads'")
        rejects(.attention, [("heads", .int(0))], "heads 0")
        rejects(.attention, [("heads", .float(2.5))], "needs an integer attribute 'heads'")
        rejects(.attention, [("heads", .int(2)), ("scale", .float(1))], "has no attribute 'scale'")
        rejects(.layerNorm, [("eps", .float(-1))], "eps -1")
        rejects(.linear, [("rows", .ints([5, 5]))], "rows")
        rejects(.tokenSelect, [("heads", .int(1)), ("keep", .int(-1)), ("prefix", .int(1))], "keep")
        rejects(.gelu, [("approximate", .int(1))], "has no attribute 'approximate'")
        XCTAssertThrowsError(try Attention(heads: Int.max))
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
