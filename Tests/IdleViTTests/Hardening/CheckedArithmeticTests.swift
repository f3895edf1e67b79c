import XCTest
import IR

/// Checked arithmetic and limits: the failures name what was computed, the successes are exact.
final class CheckedArithmeticTests: XCTestCase {
    func testProductsAndSums() throws {
        XCTAssertEqual(try Checked.elementCount([2, 197, 384], "x"), 151_296)
        XCTAssertEqual(try Checked.elementCount([Int](), "scalar"), 1)
        XCTAssertEqual(try Checked.elementCount([0, 5], "empty"), 0)
        XCTAssertEqual(try Checked.byteCount([3, 4], elementSize: 4, "t"), 48)
        XCTAssertEqual(try Checked.sum([1, 2, 3], "s"), 6)
        XCTAssertThrowsError(try Checked.elementCount([1 << 62, 4], "the element count of 'w'")) { error in
            XCTAssertEqual(error as? LimitError, .overflow("the element count of 'w'"))
            XCTAssertEqual("\(error)", "the element count of 'w' overflows 64-bit integer arithmetic")
        }
        // A zero extent does not excuse overflowing neighbours: code downstream multiplies them.
        XCTAssertThrowsError(try Checked.elementCount([0, 3, 1 << 62, 1 << 62], "patch weight"))
        XCTAssertThrowsError(try Checked.elementCount([2, -1], "shape")) { error in
            XCTAssertEqual(error as? LimitError, .negative("shape", value: "-1"))
        }
        XCTAssertThrowsError(try Checked.sum([Int.max, 1], "concat"))
        XCTAssertThrowsError(try Checked.sum([4, -1], "split"))
        XCTAssertThrowsError(try Checked.multiply(Int.max / 2, 3, "m"))
        XCTAssertThrowsError(try Checked.add(Int.max, 1, "a"))
        XCTAssertThrowsError(try Checked.subtract(Int.min, 1, "d"))
        XCTAssertThrowsError(try Checked.byteCount([1 << 61], elementSize: 8, "b"))
    }

    func testDoubleConversions() throws {
        XCTAssertEqual(try Checked.int(exactly: 12.0, "depth"), 12)
        XCTAssertThrowsError(try Checked.int(exactly: 12.5, "depth"))
        XCTAssertThrowsError(try Checked.int(exactly: .nan, "depth"))
        XCTAssertThrowsError(try Checked.int(exactly: 1e300, "depth"))
        XCTAssertThrowsError(try Checked.int(exactly: 9223372036854775808.0, "depth"))
        XCTAssertEqual(try Checked.int(rounding: 224 / 0.875, .down, "resize"), 256)
        XCTAssertThrowsError(try Checked.int(rounding: 224 / 1e-300, .down, "resize")) { error in
            XCTAssertEqual(error as? LimitError, .overflow("resize"))
        }
        XCTAssertThrowsError(try Checked.int(rounding: .infinity, .down, "resize"))
        XCTAssertEqual(try Checked.int(UInt64(7), "u"), 7)
        XCTAssertThrowsError(try Checked.int(UInt64.max, "offset"))
    }

    func testLimits() throws {
        XCTAssertEqual(try Limits.depth.check(40), 40)
        XCTAssertThrowsError(try Limits.depth.check(1_000_000_000, "architecture depth")) { error in
            XCTAssertEqual("\(error)", "architecture depth is 1000000000, over the limit of 1024")
        }
        XCTAssertThrowsError(try Limits.threads.check(0, "--threads")) { error in
            XCTAssertEqual("\(error)", "--threads is 0, below the minimum of 1")
        }
        XCTAssertEqual(try Limits.rank.check(0), 0)
        XCTAssertThrowsError(try Limits.batch.check(UInt64.max))
        XCTAssertThrowsError(try Limits.batch.check(Int64(-3)))
        XCTAssertEqual(try Limits.batch.check(UInt64(1024)), 1024)
        // The bounds hold real models and keep their products in range.
        XCTAssertTrue(Limits.imageSize.contains(518) && Limits.depth.contains(40) && Limits.mlpHidden.contains(24_576))
        XCTAssertNoThrow(try Checked.elementCount([Limits.batch.maximum, Limits.tokens.maximum, Limits.mlpHidden.maximum], "largest activation"))
        XCTAssertNoThrow(try Checked.elementCount([Limits.batch.maximum, Limits.heads.maximum, Limits.tokens.maximum, Limits.tokens.maximum], "largest attention"))
    }
}
