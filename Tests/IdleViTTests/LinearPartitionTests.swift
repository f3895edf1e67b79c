import XCTest
@testable import Interpreter

/// How `LinearKernel` cuts a product between threads (the AVX2 tile, 6 x 16, on two threads):
/// the rules its doc comment states, at DeiT-S's shapes. Speed lives in the benchmarks; these
/// check which partition each shape gets.
final class LinearPartitionTests: XCTestCase {
    private func plan(rows: Int, outFeatures: Int, inFeatures: Int, threads: Int = 2) -> LinearKernel.Partition {
        LinearKernel.partition(rows: rows, panels: (outFeatures + 15) / 16, inFeatures: inFeatures, mr: 6, nr: 16, threads: threads)
    }

    func testOneImageSplitsColumnsAndABatchSplitsRows() {
        let image = plan(rows: 197, outFeatures: 1536, inFeatures: 384)
        XCTAssertEqual(image, LinearKernel.Partition(rowChunk: 198, rowParts: 1, panelChunk: 24, panelParts: 4))
        let batch = plan(rows: 8 * 197, outFeatures: 1536, inFeatures: 384)
        XCTAssertEqual(batch.panelParts, 1)
        XCTAssertEqual(batch.rowParts, 4)
        XCTAssertEqual(batch.rowChunk % 6, 0, "row chunks are whole tiles")
        XCTAssertGreaterThanOrEqual(batch.rowChunk * batch.rowParts, 8 * 197)
    }

    func testSmallProductsStayOnOneThread() {
        XCTAssertEqual(plan(rows: 4, outFeatures: 64, inFeatures: 64).tasks, 1)
        XCTAssertEqual(plan(rows: 197, outFeatures: 1536, inFeatures: 384, threads: 1).tasks, 1)
    }

    /// The class row of DeiT-S's last block (row demand, batch 1): 0.15-0.6 M multiply-adds,
    /// below the threshold, but bound by reading 0.6-2.4 MB of weights, so both threads read.
    func testSingleRowProductsOverLargeWeightsUseEveryThread() {
        for (outFeatures, inFeatures) in [(384, 384), (1536, 384), (384, 1536), (1000, 384)] {
            let classRow = plan(rows: 1, outFeatures: outFeatures, inFeatures: inFeatures)
            XCTAssertEqual(classRow.rowParts, 1)
            XCTAssertEqual(classRow.panelParts, 4, "\(inFeatures) -> \(outFeatures) on one row")
        }
    }
}
