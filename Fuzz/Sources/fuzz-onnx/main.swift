// ONNX files through the importer (protobuf budget, wire layout, tensor decoding, constant
// folding, shape inference, the DeiT matcher) and the recogniser behind it.
import FuzzSupport
import IR
import IdleViTKit
import Importers
import ModelDescription
import ONNXImporter

func fuzzONNX(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let path = FuzzInput.write(data, size, name: "model.onnx")
    do {
        let imported = try ONNXImporter.load(path: path)
        _ = imported.details
        let recognized = try ModelDescription.recognize(imported.weights, options: imported.options)
        _ = try? ModelDescription.buildGraph(recognized)
    } catch {
        _ = error.description.lineSafe
    }
    return 0
}

runFuzzer { data, size in fuzzONNX(data, size) }
