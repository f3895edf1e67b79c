// safetensors (and bundle) files through the normal loader: format detection, the header
// rules, bundle metadata, the recogniser, the graph builder. Any input that detection sends
// elsewhere is skipped (ONNX has its own target; HDF5 would start the reader process).
import FuzzSupport
import IR
import IdleViTKit
import Importers

func fuzzSafetensors(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let path = FuzzInput.write(data, size, name: "model.safetensors")
    guard let format = try? FormatDetection.detect(path: path), format == .safetensors || format == .bundle else { return 0 }
    do {
        let loaded = try ModelLoader.load(path)
        _ = loaded.graph.nodes.count
        _ = loaded.architecture.description
    } catch {
        _ = error.description.lineSafe
    }
    return 0
}

runFuzzer { data, size in fuzzSafetensors(data, size) }
