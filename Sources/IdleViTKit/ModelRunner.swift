import IR
import Interpreter
import ModelDescription

/// A prepared model ready to run: its interpreter, fed by image batch, answering with the
/// activations asked for by name. Every command that runs a model goes through this, so the
/// input's name and the interpreter's set-up live in one place.
public final class ModelRunner: @unchecked Sendable {
    public let prepared: PreparedModel
    public let interpreter: Interpreter

    public convenience init(_ prepared: PreparedModel, threads: Int? = nil) throws(SessionError) {
        try self.init(prepared, options: InterpreterOptions(threads: threads))
    }

    public init(_ prepared: PreparedModel, options: InterpreterOptions) throws(SessionError) {
        self.prepared = prepared
        do { interpreter = try Interpreter(graph: prepared.graph, options: options) } catch { throw .input(error.description) }
    }

    /// The selections of the idle layers, which `run`, `visualize` and `verify` report.
    public var selectionNames: Set<ActivationName> {
        Set((prepared.schedule?.effective.idleLayers ?? []).map(ActivationName.selected))
    }

    /// Runs a batch `pixels` [B, C, S, S]; the result always holds the logits, plus `capture`.
    public func run(pixels: FloatTensor, capture: Set<ActivationName> = []) throws(SessionError) -> [String: Activation] {
        try run(pixels: pixels, captureNames: Set(capture.map(\.name)))
    }

    /// The same with captured values given by their names as strings (`verify` asks for the
    /// names a reference file holds).
    public func run(pixels: FloatTensor, captureNames: Set<String>) throws(SessionError) -> [String: Activation] {
        do {
            return try interpreter.run([ActivationName.pixelValues.name: pixels], capture: captureNames.isEmpty ? .outputs : .names(captureNames))
        } catch {
            throw .input(error.description)
        }
    }

    /// The logits of a run's result.
    public static func logits(_ outputs: [String: Activation]) -> FloatTensor? {
        outputs[ActivationName.logits.name]?.floatTensor
    }
}
