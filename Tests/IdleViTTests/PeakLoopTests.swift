import XCTest

@testable import Interpreter

/// The loops the kernel benchmark and `IDLEVIT_PROFILE` measure the machine with: the
/// microkernel's ceiling loop computes the tile it claims (so its flop count is honest) on
/// every instruction set, the AVX-512 geometry included.
final class PeakLoopTests: XCTestCase {
    func testMicrokernelLoopComputesItsTile() throws {
        var sets = KernelISA.supported.compactMap(CPUKernels.init)
        if !KernelISA.avx512.isSupported { sets.append(.avx512Geometry) }
        for kernels in sets {
            let table = kernels.table.pointee
            let (mr, nr) = (kernels.mr, kernels.nr)
            let k = 4096 / nr
            XCTAssertEqual(table.tile_flops_per_iteration, 2 * mr * nr * k, "\(kernels.name)")
            // The loop's operands: a[i] = 0.001 (i mod 7) over MR x k, b[i] = 0.001 (i mod 5)
            // over k x NR; it sums c[it mod (MR NR)] of every call's tile.
            let a = (0..<mr * k).map { Double(Float(0.001) * Float($0 % 7)) }
            let b = (0..<k * nr).map { Double(Float(0.001) * Float($0 % 5)) }
            var expected = 0.0
            for it in 0..<5 {
                let (row, column) = ((it % (mr * nr)) / nr, (it % (mr * nr)) % nr)
                var c = 0.0
                for kk in 0..<k { c += a[row * k + kk] * b[kk * nr + column] }
                expected += c
            }
            let got = Double(table.tile_loop(5))
            XCTAssertEqual(got, expected, accuracy: 1e-4 * abs(expected), "\(kernels.name)")
            XCTAssertGreaterThan(expected, 0)
        }
    }
}
