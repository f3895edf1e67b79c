// Bundle metadata and graph JSON. The input is the `__metadata__` object of a bundle of a
// fixed tiny model (dim 64, depth 1, image 8, patch 4, 2 classes; zero weights): it is spliced
// into a safetensors header with that model's tensors and loaded like any bundle, so the
// fuzzer works on the metadata (architecture, idle schedule, graph JSON, format_version,
// preprocessing) while the tensors stay consistent. The same input is also decoded directly
// as a graph and as an architecture, which reaches the decoders even when it is not a
// metadata object.
import FuzzSupport
import IR
import IdleViTKit
import Importers
import ModelDescription

/// The tiny model's tensors: timm names, F32, offsets tiling a zero data section.
let tensors: (json: String, dataBytes: Int) = {
    let dim = 64, mlp = 64, classes = 2, patch = 4, tokens = 5
    var shapes: [(String, [Int])] = [("cls_token", [1, 1, dim]), ("pos_embed", [1, tokens, dim]),
                                     ("patch_embed.proj.weight", [dim, 3, patch, patch]), ("patch_embed.proj.bias", [dim])]
    let b = "blocks.0."
    shapes += [(b + "norm1.weight", [dim]), (b + "norm1.bias", [dim]), (b + "attn.qkv.weight", [3 * dim, dim]),
               (b + "attn.qkv.bias", [3 * dim]), (b + "attn.proj.weight", [dim, dim]), (b + "attn.proj.bias", [dim]),
               (b + "norm2.weight", [dim]), (b + "norm2.bias", [dim]), (b + "mlp.fc1.weight", [mlp, dim]),
               (b + "mlp.fc1.bias", [mlp]), (b + "mlp.fc2.weight", [dim, mlp]), (b + "mlp.fc2.bias", [dim])]
    shapes += [("norm.weight", [dim]), ("norm.bias", [dim]), ("head.weight", [classes, dim]), ("head.bias", [classes])]
    var parts: [String] = []
    var offset = 0
    for (name, shape) in shapes {
        let bytes = shape.reduce(4, *)
        parts.append("\"\(name)\":{\"dtype\":\"F32\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}")
        offset += bytes
    }
    return (parts.joined(separator: ","), offset)
}()

func fuzzBundle(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = FuzzInput.bytes(data, size)
    if let json = try? JSONParser.parse(input) {
        if let graph = try? GraphJSON.decode(json) {
            _ = try? GraphValidator.validate(graph, requireWeights: false)
            _ = GraphPrinter.text(graph)
        }
        if let architecture = try? GraphJSON.decodeArchitecture(json) {
            _ = architecture.description
        }
        guard json.objectPairs != nil else { return 0 }
    } else {
        return 0
    }
    var header = Array("{\"__metadata__\":".utf8) + input + Array(",\(tensors.json)}".utf8)
    header += Array(repeating: UInt8(ascii: " "), count: (8 - header.count % 8) % 8)
    var file = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) } + header
    file += [UInt8](repeating: 0, count: tensors.dataBytes)
    let path = file.withUnsafeBufferPointer { FuzzInput.write($0.baseAddress, $0.count, name: "model.idlevit.safetensors") }
    do {
        let loaded = try ModelLoader.load(path)
        _ = loaded.graph.nodes.count
    } catch {
        _ = error.description.lineSafe
    }
    return 0
}

runFuzzer { data, size in fuzzBundle(data, size) }
