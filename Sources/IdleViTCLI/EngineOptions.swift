import ArgumentParser
import Foundation
import IR
import Interpreter

extension KernelISA: ExpressibleByArgument {}
extension MatrixBackend: ExpressibleByArgument {}

/// The interpreter's engine switches, for measuring what each part buys and for running every
/// kernel path. The interpreter never reads the environment: these are read here, at the top,
/// and passed in as `InterpreterOptions`. Every command that runs a model honours
///
///     IDLEVIT_PROFILE=1   time per kernel kind, GFLOP/s and % of FMA peak, on stderr
///     IDLEVIT_FUSE=0      no fusion (epilogues, LayerNorm prologue)
///     IDLEVIT_ROWS=0      no row demand (every token row of the last block)
///     IDLEVIT_ISA=avx512|avx2|portable   force the kernels' instruction set
///     IDLEVIT_GEMM=packed|openblas       matrix products and attention by our kernels or OpenBLAS
///
/// and `bench` also takes `--isa` and `--gemm` (hidden; they win over the variables).
struct EngineOptions: ParsableArguments {
    @Option(help: .hidden)
    var isa: KernelISA?

    @Option(help: .hidden)
    var gemm: MatrixBackend?

    func interpreterOptions(threads: Int?) throws -> InterpreterOptions {
        var options = try InterpreterOptions.fromEnvironment(threads: threads)
        if let isa { options.isa = isa }
        if let gemm { options.matrixBackend = gemm }
        return options
    }
}

extension InterpreterOptions {
    /// The defaults, with the `IDLEVIT_*` variables above applied; a variable set to something
    /// it cannot mean is an error, not silently ignored.
    static func fromEnvironment(threads: Int?) throws -> InterpreterOptions {
        let environment = ProcessInfo.processInfo.environment
        func flag(_ name: String) throws -> Bool? {
            guard let raw = environment[name] else { return nil }
            switch raw.lowercased() {
            case "1", "true", "yes", "on": return true
            case "0", "false", "no", "off": return false
            default: throw CLIError.invalid("\(name)='\(raw.escapedForMessage)' is not 1 or 0")
            }
        }
        func choice<T: RawRepresentable & CaseIterable>(_ name: String, _: T.Type) throws -> T? where T.RawValue == String {
            guard let raw = environment[name] else { return nil }
            guard let value = T(rawValue: raw.lowercased()) else {
                let names = T.allCases.map(\.rawValue).joined(separator: ", ")
                throw CLIError.invalid("\(name)='\(raw.escapedForMessage)' is not one of \(names)")
            }
            return value
        }
        var options = InterpreterOptions(threads: threads)
        if let profile = try flag("IDLEVIT_PROFILE") { options.profile = profile }
        if let fuse = try flag("IDLEVIT_FUSE") { options.fuse = fuse }
        if let rows = try flag("IDLEVIT_ROWS") { options.rowDemand = rows }
        options.isa = try choice("IDLEVIT_ISA", KernelISA.self)
        if let backend = try choice("IDLEVIT_GEMM", MatrixBackend.self) { options.matrixBackend = backend }
        return options
    }
}
