import IR

/// The ops LV-ViT adds (its stem, skip_lam, the token-labelling head), in the standard ONNX
/// ops `torch.onnx.export` uses for them, except that BatchNorm stays a BatchNormalization
/// node over the checkpoint's own tensors (ONNX Runtime folds it into the Conv itself).
extension OpTranslation {
    mutating func translateConvolutional(_ node: Node) throws(ONNXExportError) {
        switch node.op {
        case .conv2d(let conv):
            guard let kernel = graph.type(of: node.inputs[1])?.extent(2) else {
                throw .unsupported(node: node.name, reason: "has a convolution weight without a fixed kernel size")
            }
            try emitter.emit("Conv", node.inputs, node.name, [
                ("kernel_shape", .ints([kernel, kernel])), ("strides", .ints([conv.stride, conv.stride])),
                ("pads", .ints(Array(repeating: conv.padding, count: 4))),
            ])
        case .batchNorm(let norm):
            try emitter.emit("BatchNormalization", node.inputs, node.name, [("epsilon", .float(Float(norm.eps)))])
        case .relu:
            try emitter.emit("Relu", node.inputs, node.name)
        case .divide(let divide):
            try emitter.emit("Div", [node.inputs[0], try emitter.floatScalar(Float(divide.divisor))], node.name)
        case .maxTokens(let max):
            let tokens = try extents(node.inputs[0], at: node)[0]
            let patches = try emitter.emit("Slice", [node.inputs[0], try emitter.int64s([max.start]), try emitter.int64s([tokens]),
                                                     try emitter.int64s([1])], node.name + "/tokens")
            if emitter.opset >= 18 {
                try emitter.emit("ReduceMax", [patches, try emitter.int64s([1])], node.name, [("keepdims", .int(0))])
            } else {
                try emitter.emit("ReduceMax", [patches], node.name, [("axes", .ints([1])), ("keepdims", .int(0))])
            }
        default:
            throw .unsupported(node: node.name, reason: "is not one of the convolutional ops")
        }
    }
}
