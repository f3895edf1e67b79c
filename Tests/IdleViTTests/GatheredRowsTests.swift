import CKernels
import Foundation
import XCTest
import IR
@testable import IdleViTKit
@testable import Interpreter

/// A `gather_tokens` fused into the product that reads it (`FusionPlanner`): the GEMM reads
/// the selected rows where they are, as its input (an idle block's qkv over LN1's rows) or
/// as its residual (proj + the selected stream rows). The kernel against a naive reference
/// that gathers first; the plan; and whole idle models, whose logits must be the unfused
/// ones bit for bit (the same sums in the same order, read from other addresses).
final class GatheredRowsTests: XCTestCase {
    private struct Case {
        var images: Int
        var tokens: Int
        var selected: Int
        var k: Int
        var n: Int
    }

    /// Picked input rows and picked residual rows, against the product of gathered copies:
    /// one image and several; a tile's worth of rows and fewer; more rows than one picked
    /// block holds (240) and than the column split takes (256), so the rows are split between
    /// threads and a block starts inside an image; K cut into blocks (the residual then goes
    /// in with the first block); GELU with a residual apart.
    func testPickedRowsMatchAGatheredProduct() throws {
        let cases = [Case(images: 1, tokens: 11, selected: 7, k: 17, n: 33), Case(images: 3, tokens: 9, selected: 2, k: 40, n: 21),
                     Case(images: 2, tokens: 300, selected: 250, k: 24, n: 40), Case(images: 2, tokens: 20, selected: 13, k: 3100, n: 18)]
        var generator = SeededRandom(seed: 21)
        func values(_ count: Int, scale: Float = 1) -> [Float] {
            (0..<count).map { _ in Float(Int64(generator.next() >> 40) - (1 << 23)) / Float(1 << 23) * scale }
        }
        for kernels in CPUKernels.underTest {
            for shape in cases {
                let rows = shape.images * shape.selected
                let source = values(shape.images * shape.tokens * shape.k, scale: 2)
                let stream = values(shape.images * shape.tokens * shape.n)
                let weight = values(shape.n * shape.k, scale: 0.2), bias = values(shape.n)
                // Distinct tokens per image in a scrambled order, as token_select lists them.
                var index = [Int32]()
                for _ in 0..<shape.images {
                    var tokens = Array(0..<Int32(shape.tokens))
                    tokens.shuffle(using: &generator)
                    index += tokens.prefix(shape.selected)
                }
                func gathered(_ matrix: [Float], width: Int) -> [Float] {
                    (0..<rows).flatMap { m in
                        let row = (m / shape.selected) * shape.tokens + Int(index[m])
                        return matrix[row * width..<(row + 1) * width]
                    }
                }
                let (x, residual) = (gathered(source, width: shape.k), gathered(stream, width: shape.n))
                let packed = try weight.withUnsafeBufferPointer { w in
                    let request = PackedWeights.Request(source: w.baseAddress!, start: 0, rows: shape.n, k: shape.k)
                    return (try PackedWeights([request], nr: kernels.nr, threads: 1), request)
                }
                let matrix = try XCTUnwrap(packed.0.matrix(packed.1))
                for gelu in [false, true] {
                    var expected = [Float](repeating: 0, count: rows * shape.n)
                    for m in 0..<rows {
                        for o in 0..<shape.n {
                            var acc = Double(bias[o])
                            for kk in 0..<shape.k { acc += Double(x[m * shape.k + kk]) * Double(weight[o * shape.k + kk]) }
                            if gelu { acc = 0.5 * acc * (1 + erf(acc / 2.0.squareRoot())) }
                            expected[m * shape.n + o] = Float(acc + Double(residual[m * shape.n + o]))
                        }
                    }
                    for threads in [1, 2] {
                        let got = source.withUnsafeBufferPointer { s in
                            stream.withUnsafeBufferPointer { r in
                                bias.withUnsafeBufferPointer { b in
                                    index.withUnsafeBufferPointer { i in
                                        var y = [Float](repeating: .nan, count: rows * shape.n)
                                        let picked = PickedRows(index: i.baseAddress!, perImage: shape.selected, imageRows: shape.tokens)
                                        y.withUnsafeMutableBufferPointer { y in
                                            LinearKernel.run(kernels: kernels, x: s.baseAddress!, rows: rows, xRows: picked, weight: matrix,
                                                             bias: b.baseAddress!,
                                                             epilogue: LinearEpilogue(gelu: gelu, residual: r.baseAddress!, residualRows: picked),
                                                             y: y.baseAddress!, threads: threads)
                                        }
                                        return y
                                    }
                                }
                            }
                        }
                        var worst = 0.0
                        for (a, b) in zip(got, expected) {
                            let error = abs(Double(a) - Double(b)) / (1 + abs(Double(b)))
                            worst = error.isNaN ? .infinity : max(worst, error)
                        }
                        XCTAssertLessThanOrEqual(worst, 1e-4, "\(kernels.name) \(shape) gelu \(gelu) T\(threads)")
                    }
                }
            }
        }
    }

    /// The GEMM's own LayerNorm prologue over picked rows (the engine normalises gathered rows
    /// before a column-split product instead, so only the kernel reaches this): each picked
    /// row normalised into the workspace, then the product, in two calls whose row ranges
    /// split an image.
    func testLayerNormPrologueReadsPickedRows() throws {
        let (images, tokens, selected, k, n) = (2, 13, 9, 40, 24)
        var generator = SeededRandom(seed: 23)
        func values(_ count: Int, scale: Float = 1) -> [Float] {
            (0..<count).map { _ in Float(Int64(generator.next() >> 40) - (1 << 23)) / Float(1 << 23) * scale }
        }
        let source = values(images * tokens * k, scale: 2), weight = values(n * k, scale: 0.2), bias = values(n)
        let lnWeight = values(k), lnBias = values(k)
        let index: [Int32] = [0, 12, 3, 7, 1, 9, 11, 4, 5, 0, 2, 6, 10, 8, 12, 1, 3, 7]
        let rows = images * selected
        var expected = [Float](repeating: 0, count: rows * n)
        for m in 0..<rows {
            let row = (m / selected) * tokens + Int(index[m])
            let x = source[row * k..<(row + 1) * k].map(Double.init)
            let mean = x.reduce(0, +) / Double(k)
            let variance = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(k)
            let h = (0..<k).map { c in (x[c] - mean) / (variance + 1e-6).squareRoot() * Double(lnWeight[c]) + Double(lnBias[c]) }
            for o in 0..<n {
                expected[m * n + o] = Float((0..<k).reduce(Double(bias[o])) { $0 + h[$1] * Double(weight[o * k + $1]) })
            }
        }
        for kernels in CPUKernels.underTest {
            let request = weight.withUnsafeBufferPointer { PackedWeights.Request(source: $0.baseAddress!, start: 0, rows: n, k: k) }
            let packed = try PackedWeights([request], nr: kernels.nr, threads: 1)
            let matrix = try XCTUnwrap(packed.matrix(request))
            let workspaceFloats = kernels.table.pointee.gemm_workspace_floats(rows, k)
            let workspace = UnsafeMutableRawPointer.allocate(byteCount: max(1, workspaceFloats) * 4, alignment: 64)
            defer { workspace.deallocate() }
            var y = [Float](repeating: .nan, count: rows * n)
            source.withUnsafeBufferPointer { s in
                bias.withUnsafeBufferPointer { b in
                    lnWeight.withUnsafeBufferPointer { w in
                        lnBias.withUnsafeBufferPointer { lb in
                            index.withUnsafeBufferPointer { i in
                                y.withUnsafeMutableBufferPointer { y in
                                    var gemm = IdvGemm()
                                    (gemm.a, gemm.lda, gemm.b, gemm.k, gemm.n) = (s.baseAddress!, k, matrix.panels, k, n)
                                    (gemm.c, gemm.ldc, gemm.bias) = (y.baseAddress!, n, b.baseAddress!)
                                    (gemm.ln_weight, gemm.ln_bias, gemm.ln_eps) = (w.baseAddress!, lb.baseAddress!, 1e-6)
                                    gemm.a_rows = IdvRowIndex(index: i.baseAddress!, per_image: selected, image_rows: tokens)
                                    for (first, last) in [(0, 13), (13, rows)] {
                                        kernels.table.pointee.gemm(&gemm, first, last, 0, matrix.panelCount,
                                                                   workspace.assumingMemoryBound(to: Float.self))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            var worst = 0.0
            for (got, want) in zip(y, expected) {
                worst = max(worst, abs(Double(got) - Double(want)) / (1 + abs(Double(want))))
            }
            XCTAssertLessThanOrEqual(worst, 1e-4, "\(kernels.name)")
            XCTAssertFalse(y.contains { $0.isNaN }, "\(kernels.name)")
        }
    }

    /// The kernels trust token indices (the gather's, and the product reading gathered rows in
    /// place): the validator admits only a `token_select`'s choice among the tokens indexed,
    /// not one made over more tokens, nor over a token count that is the batch's, nor an i32
    /// value from anywhere else.
    func testValidatorAdmitsOnlyIndicesMadeForTheTokensIndexed() throws {
        let prepared = try Session.prepare(ModelRequest(path: TestPaths.fixture("micro/model.safetensors"), keepRatio: 0.7))
        XCTAssertNoThrow(try GraphValidator.validate(prepared.graph))
        let gather = try XCTUnwrap(prepared.graph.nodes.firstIndex { $0.kind == .gatherTokens })
        let patches = try XCTUnwrap(prepared.graph.nodes.first { $0.kind == .patchEmbed }?.name)
        var fewerTokens = prepared.graph
        fewerTokens.nodes[gather].inputs[0] = patches
        XCTAssertThrowsError(try GraphValidator.validate(fewerTokens)) { error in
            XCTAssertTrue("\(error)".contains("token_select's choice among"), "\(error)")
        }
        var batchTokens = fewerTokens
        batchTokens.inputs.append(GraphInput(name: "by_batch", type: ValueType(.f32, [.batch, .batch, .fixed(prepared.architecture.embedDim)])))
        batchTokens.nodes[gather].inputs[0] = "by_batch"
        XCTAssertThrowsError(try GraphValidator.validate(batchTokens)) { error in
            XCTAssertTrue("\(error)".contains("token_select's choice among"), "\(error)")
        }
        var fromInput = prepared.graph
        let indexType = try XCTUnwrap(prepared.graph.type(of: prepared.graph.nodes[gather].inputs[1]))
        fromInput.inputs.append(GraphInput(name: "positions", type: indexType))
        fromInput.nodes[gather].inputs[1] = "positions"
        XCTAssertThrowsError(try GraphValidator.validate(fromInput)) { error in
            XCTAssertTrue("\(error)".contains("token_select's choice among"), "\(error)")
        }
    }

    /// Run for its logits, an idle model's blocks read their gathers in place: each idle
    /// layer's qkv reads LN1's selected rows and its proj the selected stream rows; what stays
    /// a gather is the last block's (row demand computes its class rows one row at a time).
    /// Captured gathers (verify compares them) stay gathers.
    func testIdleBlocksFuseTheirGathers() throws {
        let prepared = try Session.prepare(ModelRequest(path: TestPaths.fixture("micro/model.safetensors"), keepRatio: 0.7))
        let idleLayers = prepared.graph.nodes.filter { $0.kind == .tokenSelect }.count
        XCTAssertGreaterThan(idleLayers, 1)
        for batch in [1, 3] {
            let labels = try Interpreter(graph: prepared.graph).instructionLabels(batch: batch)
            XCTAssertEqual(labels.filter { $0 == "gather_tokens+linear" }.count, idleLayers - 1, "\(labels)")
            XCTAssertEqual(labels.filter { $0 == "linear+add(gathered)" }.count, idleLayers - 1, "\(labels)")
            XCTAssertEqual(labels.filter { $0 == "gather_tokens" }.count, 1, "the last block's keys and values: \(labels)")
        }
        let everything = Set(prepared.graph.nodes.map(\.name))
        let verifying = try Interpreter(graph: prepared.graph).instructionLabels(batch: 1, captured: everything)
        XCTAssertFalse(verifying.contains { $0.contains("gather") && $0 != "gather_tokens" }, "\(verifying)")
        XCTAssertEqual(verifying.filter { $0 == "gather_tokens" }.count, 2 * idleLayers)
    }

    /// The logits with gathers fused are the logits with the gathers run (captured, which
    /// keeps them and every other fusion as it is), bit for bit, at the fixture's batch and three times it (several
    /// images' selections in one product), on every instruction set.
    func testFusedGathersChangeNoBit() throws {
        let prepared = try Session.prepare(ModelRequest(path: TestPaths.fixture("micro/model.safetensors"), keepRatio: 0.7))
        let gathers = Set(prepared.graph.nodes.filter { $0.kind == .gatherTokens }.map(\.name))
        let one = try Session.loadInput(path: TestPaths.fixture("micro/input.safetensors"), for: prepared.architecture)
        let count = one.values.count
        let three = (0..<3 * count).map { i in one.values[i % count] * (1 + 0.25 * Float(i / count)) }
        for input in [one, FloatTensor(shape: [3 * one.shape[0]] + one.shape.dropFirst(), values: three)] {
            for isa in KernelISA.supported {
                let interpreter = try Interpreter(graph: prepared.graph, options: InterpreterOptions(isa: isa))
                func logits(_ capture: Capture) throws -> [UInt32] {
                    try XCTUnwrap(interpreter.run(["pixel_values": input], capture: capture)["logits"]?.floatTensor).values.map(\.bitPattern)
                }
                XCTAssertEqual(try logits(.outputs), try logits(.names(gathers)), "\(isa) batch \(input.shape[0])")
            }
        }
    }
}
