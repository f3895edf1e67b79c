import ArgumentParser
import IR
import IdleViTKit

/// Options every command that loads a model shares.
struct ModelOptions: ParsableArguments {
    @Argument(help: "Model file: safetensors, ONNX, HDF5, PyTorch (.pth / .pt / .bin) or IdleViT bundle.")
    var model: String

    @Option(help: "Attention heads, when the checkpoint's dim is not 64 x heads (DeiT's head size).")
    var heads: Int?

    @Option(help: "The state dict to load from a PyTorch checkpoint holding several ('model', 'model_ema', ...).")
    var key: String?

    @Option(name: .customLong("skip-lam"), help: "LV-ViT: what its residual branches are divided by, when the checkpoint is not a published configuration (default: TokenLabeling's for that geometry, else 2).")
    var skipLam: Double?

    @Flag(help: "Print one JSON document on stdout instead of tables.")
    var json = false

    func validate() throws {
        if let heads {
            do { try Limits.heads.check(heads, "--heads") } catch { throw ValidationError(error.description) }
        }
        if let skipLam, !(skipLam.isFinite && skipLam >= 1e-3 && skipLam <= 1e3) {
            throw ValidationError("--skip-lam \(skipLam) is outside [0.001, 1000]")
        }
    }
}

/// The IdleViT schedule options.
struct IdleOptions: ParsableArguments {
    @Option(name: .customLong("keep-ratio"), help: "Base keep ratio r in (0, 1]: stage s of the idle layers keeps floor(Np * r^s) tokens.")
    var keepRatio: Double?

    @Option(name: .customLong("idle-layers"), help: "Idle layers A-B (default: the last three quarters, 3-11 for depth 12).")
    var idleLayers: String?

    @Option(name: .customLong("kept-tokens"), help: "Explicit image tokens kept per layer, comma separated, 'dense' or '-' for a dense layer.")
    var keptTokens: String?

    func request(path: String, heads: Int?, key: String? = nil, skipLam: Double? = nil) throws -> ModelRequest {
        var request = ModelRequest(path: path, heads: heads, keepRatio: keepRatio, key: key)
        request.skipLam = skipLam
        if let keepRatio, !(keepRatio > 0 && keepRatio <= 1) {
            throw CLIError.invalid("--keep-ratio \(keepRatio) is outside (0, 1]")
        }
        if let idleLayers {
            let parts = idleLayers.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a >= 0, a <= b, b < Limits.depth.maximum else {
                throw CLIError.invalid("--idle-layers '\(idleLayers.escapedForMessage)' is not a range A-B of layer indices (0 <= A <= B < \(Limits.depth.maximum))")
            }
            request.idleLayers = a...b
        }
        if let keptTokens {
            var list: [Int?] = []
            let items = keptTokens.split(separator: ",", omittingEmptySubsequences: false)
            guard items.count <= Limits.depth.maximum else {
                throw CLIError.invalid("--kept-tokens lists \(items.count) layers, more than the depth limit of \(Limits.depth.maximum)")
            }
            for item in items {
                let text = item.trimmingCharacters(in: .whitespaces)
                if text == "dense" || text == "-" { list.append(nil); continue }
                guard let k = Int(text), k >= 0, k <= Limits.tokens.maximum else {
                    throw CLIError.invalid("--kept-tokens entry '\(text.escapedForMessage)' is not a token count (0 to \(Limits.tokens.maximum)) or 'dense'")
                }
                list.append(k)
            }
            request.keptTokens = list
        }
        return request
    }
}

extension ModelOptions {
    func prepare(_ idle: IdleOptions) throws -> PreparedModel {
        try prepare(try idle.request(path: model, heads: heads, key: key, skipLam: skipLam))
    }

    func prepare(_ request: ModelRequest) throws -> PreparedModel {
        do {
            return try Session.prepare(request)
        } catch {
            throw CLIError.invalid(error.description)
        }
    }
}

import Foundation
