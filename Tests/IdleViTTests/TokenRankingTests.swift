import XCTest
@testable import Interpreter

/// Token selection's ranking (`idv_rank_descending` through `TokenSelectKernel.rank`) against
/// a plain sort by the rule IDLEVIT.md states: descending score, equal scores by ascending token.
final class TokenRankingTests: XCTestCase {
    private func reference(_ scores: [Double], prefix: Int) -> [Int32] {
        Array(Int32(prefix)..<Int32(scores.count)).sorted { a, b in
            let (x, y) = (scores[Int(a)], scores[Int(b)])
            return x != y ? x > y : a < b
        }
    }

    func testRankingMatchesTheStatedOrderAtEveryLength() {
        var generator = SystemRandomNumberGenerator()
        // Lengths around the insertion runs (8) and the merge widths, and DeiT's 196 and 197.
        for tokens in [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 97, 138, 196, 197, 300] {
            for prefix in [0, 1, 2] where prefix < tokens {
                for round in 0..<4 {
                    // Round 0: all distinct; later rounds: few distinct values, so ties are common.
                    let levels = round == 0 ? 1 << 30 : 3 + round
                    let scores = (0..<tokens).map { _ in Double(Int.random(in: 0..<levels, using: &generator)) / 7 - 1 }
                    let ranked = scores.withUnsafeBufferPointer {
                        TokenSelectKernel.ranking($0.baseAddress!, prefix: prefix, tokens: tokens)
                    }
                    XCTAssertEqual(ranked, reference(scores, prefix: prefix), "\(tokens) tokens, prefix \(prefix), round \(round)")
                }
            }
        }
    }

    func testEqualScoresKeepTokenOrderAndNaNsStillGiveEveryTokenOnce() {
        let ties = [Double](repeating: 0.5, count: 20)
        XCTAssertEqual(ties.withUnsafeBufferPointer { TokenSelectKernel.ranking($0.baseAddress!, prefix: 1, tokens: 20) },
                       Array(1..<20).map(Int32.init))
        // Scores from a checkpoint with NaN weights: no order is meaningful, but every token
        // comes out once (the gather after it indexes with them).
        let scores: [Double] = [0, 3, .nan, 1, 2, .nan, 5, -.infinity, .infinity]
        let ranked = scores.withUnsafeBufferPointer { TokenSelectKernel.ranking($0.baseAddress!, prefix: 1, tokens: 9) }
        XCTAssertEqual(ranked.sorted(), Array(1..<9).map(Int32.init))
    }
}
