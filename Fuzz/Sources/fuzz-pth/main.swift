// PyTorch checkpoints through the TorchImporter: the zip directory or the legacy stream, the
// pickle machine and its limits, tensor views (every weight's elements are read, so a view past
// its bytes faults here), state-dict selection, the description of the checkpoint's other
// contents, then the recogniser and graph builder as `idlevit inspect` runs them.
import FuzzSupport
import IdleViTKit
import Importers
import ModelDescription
import TorchImporter

func fuzzPyTorch(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let path = FuzzInput.write(data, size, name: "model.pth")
    do {
        let checkpoint = try TorchImporter.load(path: path)
        var sum: Float = 0
        for weight in checkpoint.weights.weights {
            for value in weight.tensor.buffer { sum += value }
        }
        let contents = checkpoint.contents
        _ = (sum, checkpoint.details.count, contents.entries.map(\.summary), contents.objects.map(\.fields.count), contents.inertGlobals)
        let recognized = try ModelDescription.recognize(checkpoint.weights)
        _ = try? ModelDescription.buildGraph(recognized)
    } catch {
        _ = error.description
    }
    return 0
}

runFuzzer { data, size in fuzzPyTorch(data, size) }
