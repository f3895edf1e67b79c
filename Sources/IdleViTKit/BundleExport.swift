import Bundle
import Exporters
import IR
import Importers
import ModelDescription

/// `convert --to bundle`: a prepared model (any input format, rewritten or not) to an IdleViT
/// bundle.
public enum BundleExport {
    public static func write(_ prepared: PreparedModel, dtype: OutputDType, producer: String, to path: String) throws(ExportError) {
        try BundleWriter.write(try contents(prepared, dtype: dtype, producer: producer), to: path)
    }

    public static func contents(_ prepared: PreparedModel, dtype: OutputDType, producer: String) throws(ExportError) -> BundleContents {
        let a = prepared.architecture
        // The graph's constants are what runs; the recogniser's canonical weights back them up
        // for importers whose graphs keep their own constant names.
        var tensors: [String: FloatTensor] = [:]
        for name in ModelDescription.expectedTensors(a).map(\.name) {
            guard let tensor = prepared.graph.constant(named: name)?.tensor ?? prepared.loaded.recognized.weights[name]?.tensor else {
                throw .invalidRequest("\(displayName(prepared.loaded.path)): no weights for '\(name)' to write into the bundle")
            }
            tensors[name] = tensor
        }
        return BundleContents(architecture: a, tensors: tensors, schedule: prepared.schedule, dtype: dtype,
                              source: try source(of: prepared.loaded), producer: producer,
                              preprocessing: prepared.preprocessing)
    }

    /// The original checkpoint: hashed when the input is one, carried over when the input is
    /// itself a bundle (so bundle -> bundle keeps provenance and bytes).
    static func source(of loaded: LoadedModel) throws(ExportError) -> BundleProvenance {
        guard loaded.format == .bundle else { return .hashing(path: loaded.path, format: loaded.format) }
        // The loader validated the bundle, `source` included.
        guard let text = loaded.sourceMetadata[BundleKey.source], case .success(let source) = BundleSource.decode(text) else {
            throw .invalidRequest("\(displayName(loaded.path)): the bundle's 'source' metadata is unreadable")
        }
        return .recorded(source)
    }
}
