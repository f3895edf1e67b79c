import Foundation
import XCTest
import IR
@testable import Interpreter

/// The CKernels kernels against naive Double references, for every instruction set this
/// machine can run (the portable path always among them), at shapes that exercise every edge:
/// 1, 7, 17, 65, 197 and 700 rows (several row blocks), K not a multiple of the vector width and split into several
/// blocks, N not a multiple of the panel width, every epilogue, a LayerNorm prologue, strided
/// rows, one and two threads. Whole models through each instruction set: EngineModelTests.
final class KernelTests: XCTestCase {
    private var kernelSets: [CPUKernels] {
        let sets = CPUKernels.underTest
        XCTAssertTrue(sets.contains { $0.isa == .portable })
        return sets
    }

    private struct Shape {
        var rows: Int
        var k: Int
        var n: Int
    }

    /// Epilogue and prologue combinations, as `Program` fuses them.
    private enum Mode: CaseIterable {
        case plain, noBias, gelu, residualInPlace, scaleResidualInPlace, geluScaleResidualInPlace, residualApart, layerNorm, layerNormGelu
    }

    private func values(_ count: Int, _ generator: inout SeededRandom, scale: Float = 1) -> [Float] {
        (0..<count).map { _ in Float(Int64(generator.next() >> 40) - (1 << 23)) / Float(1 << 23) * scale }
    }

    private func gelu(_ x: Double) -> Double { 0.5 * x * (1 + erf(x / 2.0.squareRoot())) }

    func testLinearMatchesNaiveProductForEveryISAShapeAndEpilogue() throws {
        // Rows 1-197; K of 1, not a multiple of 8 or 16, and long enough to be cut into K blocks
        // (over 1536 for AVX2, 768 for AVX-512, 3072 for portable); N of 1, odd, and not a
        // multiple of the panel.
        let shapes = [Shape(rows: 1, k: 5, n: 13), Shape(rows: 7, k: 17, n: 33), Shape(rows: 17, k: 1, n: 7),
                      Shape(rows: 65, k: 300, n: 21), Shape(rows: 197, k: 77, n: 50), Shape(rows: 20, k: 3100, n: 40),
                      // A last tile of 2 or 3 rows, done two panels at a time (an idle block's 68
                      // or 99 rows), with an odd panel out, with K cut, and rows fewer than a tile.
                      Shape(rows: 68, k: 600, n: 70), Shape(rows: 14, k: 3100, n: 40), Shape(rows: 99, k: 40, n: 64),
                      Shape(rows: 2, k: 33, n: 96),
                      // More rows than one row block holds (320 KB of A: 273 rows at K = 300),
                      // with one thread and with the rows split between two.
                      Shape(rows: 700, k: 300, n: 21)]
        var generator = SeededRandom(seed: 7)
        for kernels in kernelSets {
            for shape in shapes {
                let data = LinearData(x: values(shape.rows * shape.k, &generator, scale: 2),
                                      w: values(shape.n * shape.k, &generator, scale: 0.2), b: values(shape.n, &generator),
                                      gamma: values(shape.n, &generator), r: values(shape.rows * shape.n, &generator),
                                      lnWeight: values(shape.k, &generator), lnBias: values(shape.k, &generator))
                let key = PackedWeights.Request(source: data.w.pointer, start: 0, rows: shape.n, k: shape.k)
                let packed = try PackedWeights([key], nr: kernels.nr, threads: 1)
                for mode in Mode.allCases {
                    let expected = reference(mode, shape, data)
                    for threads in [1, 2] {
                        let got = runLinear(kernels, mode, shape, packed.matrix(key)!, data, threads: threads)
                        assertClose(got, expected, "\(kernels.name) \(mode) rows \(shape.rows) K \(shape.k) N \(shape.n) T \(threads)")
                    }
                }
            }
        }
    }

    /// One token row of every image (the row-demand path): rows `tokens * K` apart in x and
    /// `tokens * N` apart in y and the residual, both threads.
    func testLinearOnStridedRows() throws {
        var generator = SeededRandom(seed: 11)
        let (images, tokens, k, n) = (3, 5, 40, 37)
        for kernels in kernelSets {
            let x = FloatBuffer(values(images * tokens * k, &generator))
            let w = FloatBuffer(values(n * k, &generator, scale: 0.3))
            let b = FloatBuffer(values(n, &generator))
            let key = PackedWeights.Request(source: w.pointer, start: 0, rows: n, k: k)
            let packed = try PackedWeights([key], nr: kernels.nr, threads: 1)
            for threads in [1, 2] {
                let y = FloatBuffer([Float](repeating: 7, count: images * tokens * n))
                LinearKernel.run(kernels: kernels, x: x.pointer + 2 * k, rows: images, xStride: tokens * k, weight: packed.matrix(key)!,
                                 bias: b.pointer, epilogue: LinearEpilogue(residual: y.pointer + 2 * n), y: y.pointer + 2 * n,
                                 yStride: tokens * n, threads: threads)
                let (xs, ws, bs, ys) = (x.values, w.values, b.values, y.values)
                for image in 0..<images {
                    for t in 0..<tokens {
                        for o in 0..<n {
                            let value = ys[(image * tokens + t) * n + o]
                            guard t == 2 else {
                                XCTAssertEqual(value, 7, "rows between the strided ones untouched")
                                continue
                            }
                            var acc = 7.0 + Double(bs[o])
                            for kk in 0..<k { acc += Double(xs[(image * tokens + 2) * k + kk]) * Double(ws[o * k + kk]) }
                            XCTAssertEqual(Double(value), acc, accuracy: 1e-4 * (1 + abs(acc)), "\(kernels.name) T\(threads)")
                        }
                    }
                }
            }
        }
    }

    /// A linear layer taking rows [start, end) of a larger weight (q, k or v of a qkv).
    func testPackingARangeOfRows() throws {
        var generator = SeededRandom(seed: 5)
        let (rows, k, total, start, n) = (9, 24, 60, 20, 19)
        let x = FloatBuffer(values(rows * k, &generator)), w = FloatBuffer(values(total * k, &generator))
        let (xs, ws) = (x.values, w.values)
        for kernels in kernelSets {
            let key = PackedWeights.Request(source: w.pointer, start: start, rows: n, k: k)
            let packed = try PackedWeights([key, key], nr: kernels.nr, threads: 2)
            let y = FloatBuffer([Float](repeating: 0, count: rows * n))
            LinearKernel.run(kernels: kernels, x: x.pointer, rows: rows, weight: packed.matrix(key)!, bias: nil, y: y.pointer, threads: 2)
            let ys = y.values
            for m in 0..<rows {
                for o in 0..<n {
                    var acc = 0.0
                    for kk in 0..<k { acc += Double(xs[m * k + kk]) * Double(ws[(start + o) * k + kk]) }
                    XCTAssertEqual(Double(ys[m * n + o]), acc, accuracy: 1e-4 * (1 + abs(acc)), "\(kernels.name)")
                }
            }
        }
    }

    func testAttentionMatchesNaiveSoftmaxForEveryISA() throws {
        var generator = SeededRandom(seed: 3)
        // Head sizes: DeiT's 64, one not a multiple of the panel (V is padded), one of whole
        // 8 x 8 query transposes and a remainder, and a tiny one.
        for kernels in kernelSets {
            for tokens in [1, 7, 17, 65, 197] {
                for (heads, d) in [(2, 64), (3, 24), (2, 13), (2, 5)] where tokens < 100 || d == 64 {
                    let batch = 2, channels = heads * d
                    let qkv = values(batch * tokens * 3 * channels, &generator, scale: 2)
                    let expected = naiveAttention(qkv: qkv, batch: batch, tokens: tokens, heads: heads, d: d)
                    for queries in Set([tokens, min(2, tokens)]) {
                        for threads in [1, 2] {
                            let got = runAttention(kernels, qkv: qkv, batch: batch, tokens: tokens, heads: heads, d: d,
                                                   queries: queries, threads: threads)
                            for image in 0..<batch {
                                for t in 0..<queries {
                                    let offset = (image * tokens + t) * channels
                                    assertClose(Array(got[offset..<offset + channels]), Array(expected[offset..<offset + channels]),
                                                "\(kernels.name) attention S \(tokens) d \(d) queries \(queries) T \(threads)")
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The token selection's four-row dot product is four single ones, bit for bit (the
    /// selection's exactness argument rests on each row's sum being the same arithmetic),
    /// at lengths with and without a tail, on every instruction set.
    func testFourRowDotIsFourSingleDotsBitForBit() throws {
        var generator = SeededRandom(seed: 12)
        for kernels in kernelSets {
            for n in [1, 7, 8, 29, 384] {
                let stride = n + 3
                let rows = values(4 * stride, &generator, scale: 3)
                let x = values(n, &generator, scale: 2)
                var four = [Double](repeating: .nan, count: 4)
                rows.withUnsafeBufferPointer { a in
                    x.withUnsafeBufferPointer { b in
                        four.withUnsafeMutableBufferPointer { out in
                            kernels.table.pointee.dot4_ff(a.baseAddress!, stride, b.baseAddress!, n, out.baseAddress!, 1)
                        }
                        for r in 0..<4 {
                            let single = kernels.table.pointee.dot_ff(a.baseAddress! + r * stride, b.baseAddress!, n)
                            XCTAssertEqual(four[r].bitPattern, single.bitPattern, "\(kernels.name) n \(n) row \(r)")
                        }
                    }
                }
            }
        }
    }

    /// The microkernel ceiling loop (kernel benchmark, `FMAPeak.Loop.microkernel`) computes the
    /// tile it counts flops for, so its rate is honest.
    func testMicrokernelLoopComputesItsTile() throws {
        for kernels in kernelSets {
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

    /// Attention's exponential (its softmax works in base 2) within 1e-7 of 2^x relative, over
    /// [-126, 0] and its ends, and 2^-126 below (a softmax term next to a row sum >= 1).
    func testExp2OfSoftmaxExponents() throws {
        var x: [Float] = (0...126_000).map { -Float($0) / 1000 }
        x += [-0.5, -0.49132, -1e-7, -126.0001, -127, -200, -1e30]
        for kernels in kernelSets {
            var y = [Float](repeating: 0, count: x.count)
            kernels.table.pointee.exp2_nonpositive(x, &y, x.count)
            var worst = 0.0
            for (input, output) in zip(x, y) {
                let expected = Foundation.exp2(Double(max(input, -126)))
                worst = max(worst, abs(Double(output) - expected) / expected)
            }
            XCTAssertLessThanOrEqual(worst, 1e-7, "\(kernels.name) exp2")
        }
    }

    func testGELUAndLayerNormKernels() throws {
        var generator = SeededRandom(seed: 9)
        let x = values(203, &generator, scale: 6) + [-30, -5, 0, 5, 30]
        for kernels in kernelSets {
            var y = [Float](repeating: 0, count: x.count)
            kernels.table.pointee.gelu(x, &y, x.count)
            for (input, output) in zip(x, y) {
                XCTAssertEqual(Double(output), gelu(Double(input)), accuracy: 2e-6 * (1 + abs(Double(input))), "\(kernels.name) gelu(\(input))")
            }
            let (rows, channels) = (7, 29)
            let weight = values(channels, &generator), bias = values(channels, &generator)
            let input = values(rows * channels, &generator, scale: 3).map { $0 + 10 }
            var normed = [Float](repeating: 0, count: rows * channels)
            kernels.table.pointee.layer_norm(input, rows, channels, channels, weight, bias, 1e-6, &normed)
            let expected = naiveLayerNorm(input, rows: rows, channels: channels, weight: weight, bias: bias)
            assertClose(normed, expected, "\(kernels.name) layer_norm")
        }
    }

    // MARK: helpers

    /// Test data in memory of its own, so kernels get stable pointers without escaping an
    /// array's buffer from its closure.
    private final class FloatBuffer {
        let pointer: UnsafeMutablePointer<Float>
        let count: Int
        init(_ values: [Float]) {
            count = values.count
            pointer = .allocate(capacity: max(count, 1))
            pointer.initialize(from: values, count: count)
        }
        deinit { pointer.deallocate() }
        var values: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
    }

    private struct LinearData {
        let x: FloatBuffer, w: FloatBuffer, b: FloatBuffer, gamma: FloatBuffer, r: FloatBuffer, lnWeight: FloatBuffer, lnBias: FloatBuffer

        init(x: [Float], w: [Float], b: [Float], gamma: [Float], r: [Float], lnWeight: [Float], lnBias: [Float]) {
            (self.x, self.w, self.b, self.gamma) = (FloatBuffer(x), FloatBuffer(w), FloatBuffer(b), FloatBuffer(gamma))
            (self.r, self.lnWeight, self.lnBias) = (FloatBuffer(r), FloatBuffer(lnWeight), FloatBuffer(lnBias))
        }
    }

    private func reference(_ mode: Mode, _ shape: Shape, _ data: LinearData) -> [Float] {
        let (x, w, b, gamma, r) = (data.x.values, data.w.values, data.b.values, data.gamma.values, data.r.values)
        let input = (mode == .layerNorm || mode == .layerNormGelu)
            ? naiveLayerNorm(x, rows: shape.rows, channels: shape.k, weight: data.lnWeight.values, bias: data.lnBias.values) : x
        var y = [Float](repeating: 0, count: shape.rows * shape.n)
        for m in 0..<shape.rows {
            for o in 0..<shape.n {
                var acc = 0.0
                for kk in 0..<shape.k { acc += Double(input[m * shape.k + kk]) * Double(w[o * shape.k + kk]) }
                if mode != .noBias { acc += Double(b[o]) }
                switch mode {
                case .gelu, .layerNormGelu: acc = gelu(acc)
                case .residualInPlace, .residualApart: acc += Double(r[m * shape.n + o])
                case .scaleResidualInPlace: acc = acc * Double(gamma[o]) + Double(r[m * shape.n + o])
                case .geluScaleResidualInPlace: acc = gelu(acc) * Double(gamma[o]) + Double(r[m * shape.n + o])
                case .plain, .noBias, .layerNorm: break
                }
                y[m * shape.n + o] = Float(acc)
            }
        }
        return y
    }

    private func runLinear(_ kernels: CPUKernels, _ mode: Mode, _ shape: Shape, _ matrix: PackedMatrix, _ data: LinearData,
                           threads: Int) -> [Float] {
        let inPlace: Set<Mode> = [.residualInPlace, .scaleResidualInPlace, .geluScaleResidualInPlace]
        let y = FloatBuffer(inPlace.contains(mode) ? data.r.values : [Float](repeating: .nan, count: shape.rows * shape.n))
        let workspace = FloatBuffer([Float](repeating: 0, count: max(1, LinearKernel.workspaceFloats(
            kernels: kernels, rows: shape.rows, inFeatures: shape.k, outFeatures: shape.n, threads: threads))))
        var epilogue = LinearEpilogue(gelu: [.gelu, .layerNormGelu, .geluScaleResidualInPlace].contains(mode))
        if [.scaleResidualInPlace, .geluScaleResidualInPlace].contains(mode) { epilogue.scale = UnsafePointer(data.gamma.pointer) }
        if inPlace.contains(mode) { epilogue.residual = UnsafePointer(y.pointer) }
        if mode == .residualApart { epilogue.residual = UnsafePointer(data.r.pointer) }
        let prologue = mode == .layerNorm || mode == .layerNormGelu
            ? LayerNormPrologue(weight: data.lnWeight.pointer, bias: data.lnBias.pointer, eps: 1e-6) : nil
        LinearKernel.run(kernels: kernels, x: data.x.pointer, rows: shape.rows, weight: matrix,
                         bias: mode == .noBias ? nil : UnsafePointer(data.b.pointer), epilogue: epilogue, layerNorm: prologue,
                         y: y.pointer, threads: threads, workspace: workspace.pointer)
        return y.values
    }

    private func naiveLayerNorm(_ x: [Float], rows: Int, channels: Int, weight: [Float], bias: [Float]) -> [Float] {
        var y = [Float](repeating: 0, count: x.count)
        for m in 0..<rows {
            let row = x[m * channels..<(m + 1) * channels].map(Double.init)
            let mean = row.reduce(0, +) / Double(channels)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(channels)
            for c in 0..<channels {
                y[m * channels + c] = Float((row[c] - mean) / (variance + 1e-6).squareRoot() * Double(weight[c]) + Double(bias[c]))
            }
        }
        return y
    }

    private func runAttention(_ kernels: CPUKernels, qkv: [Float], batch: Int, tokens: Int, heads: Int, d: Int, queries: Int,
                              threads: Int) -> [Float] {
        let channels = heads * d
        let input = FloatBuffer(qkv)
        let y = FloatBuffer([Float](repeating: 0, count: batch * tokens * channels))
        let scratch = FloatBuffer([Float](repeating: 0, count: AttentionKernel.scratchFloats(kernels: kernels, tokens: tokens,
                                                                                             headDimension: d, threads: threads)))
        let q = UnsafePointer(input.pointer)
        AttentionKernel.run(kernels: kernels, q: q, k: q + channels, v: q + 2 * channels, rowStride: 3 * channels, batch: batch,
                            tokens: tokens, channels: channels, heads: heads, scratch: scratch.pointer, y: y.pointer, threads: threads,
                            queries: queries)
        return y.values
    }

    private func naiveAttention(qkv: [Float], batch: Int, tokens: Int, heads: Int, d: Int) -> [Float] {
        let channels = heads * d, stride = 3 * channels
        var y = [Float](repeating: 0, count: batch * tokens * channels)
        for image in 0..<batch {
            let base = image * tokens * stride
            for h in 0..<heads {
                for i in 0..<tokens {
                    var scores = [Double](repeating: 0, count: tokens)
                    for j in 0..<tokens {
                        var dot = 0.0
                        for c in 0..<d { dot += Double(qkv[base + i * stride + h * d + c]) * Double(qkv[base + j * stride + channels + h * d + c]) }
                        scores[j] = dot / Double(d).squareRoot()
                    }
                    let top = scores.max()!
                    let weights = scores.map { exp($0 - top) }
                    let sum = weights.reduce(0, +)
                    for c in 0..<d {
                        var out = 0.0
                        for j in 0..<tokens { out += weights[j] * Double(qkv[base + j * stride + 2 * channels + h * d + c]) }
                        y[(image * tokens + i) * channels + h * d + c] = Float(out / sum)
                    }
                }
            }
        }
        return y
    }

    private func assertClose(_ got: [Float], _ expected: [Float], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count, label, file: file, line: line)
        var worst = 0.0
        var at = 0
        for (i, (a, b)) in zip(got, expected).enumerated() {
            let error = abs(Double(a) - Double(b)) / (1 + abs(Double(b)))
            if !(error <= worst) { (worst, at) = (error.isNaN ? .infinity : error, i) }
        }
        XCTAssertLessThanOrEqual(worst, 1e-4, "\(label): element \(at) is \(got[at]), expected \(expected[at])", file: file, line: line)
    }
}
