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
}
