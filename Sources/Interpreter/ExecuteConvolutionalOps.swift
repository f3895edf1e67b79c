import IR

extension Interpreter {
    /// The ops LV-ViT adds (its convolutional stem, skip_lam, the token-labelling head), kept
    /// out of `execute`'s switch so that it stays one case for all of them.
    func executeConvolutionalOps(_ step: Step, _ instruction: Program.Instruction, inputs: UnsafeBufferPointer<UnsafeRawPointer>,
                                 output y: UnsafeMutablePointer<Float>, scratch: UnsafeMutableRawPointer) {
        func f(_ i: Int) -> UnsafePointer<Float> { inputs[i].assumingMemoryBound(to: Float.self) }
        let shapes = instruction.inputShapes
        let outShape = instruction.outputShape
        let node = step.node
        switch node.op {
        case .conv2d(let conv):
            let (x, w) = (shapes[0], shapes[1])
            let geometry = Conv2dKernel.Geometry(batch: x[0], channels: x[1], height: x[2], width: x[3], outChannels: w[0], kernel: w[2],
                                                 stride: conv.stride, padding: conv.padding, outHeight: outShape[2], outWidth: outShape[3])
            Conv2dKernel.run(kernels: kernels, x: f(0), weight: f(1), packed: step.packed, bias: inputs.count > 2 ? f(2) : nil,
                             zeros: zeros, geometry, scratch: scratch.assumingMemoryBound(to: Float.self), y: y, threads: threads)
        case .batchNorm(let norm):
            StemKernels.batchNorm(f(0), batch: outShape[0], channels: outShape[1], plane: outShape[2] * outShape[3],
                                  weight: f(1), bias: f(2), mean: f(3), variance: f(4), eps: Float(norm.eps), y: y, threads: threads)
        case .relu:
            StemKernels.relu(f(0), count: outShape.elementCount, y: y, threads: threads)
        case .divide(let divide):
            StemKernels.divide(f(0), count: outShape.elementCount, divisor: Float(divide.divisor), y: y, threads: threads)
        case .maxTokens(let max):
            let x = shapes[0]
            StemKernels.maxTokens(f(0), batch: x[0], tokens: x[1], channels: x[2], start: max.start, y: y)
        default:
            preconditionFailure("\(node.kind.rawValue) is not one of the convolutional ops")
        }
    }

    /// Scratch for the im2col columns of one image.
    static func convolutionScratchBytes(_ step: Step, batch: Int) -> Int {
        guard case .conv2d(let conv) = step.node.op else { return 0 }
        let x = step.inputTypes[0].concreteShape(batch: batch), w = step.inputTypes[1].concreteShape(batch: batch)
        let out = step.node.type.concreteShape(batch: batch)
        let geometry = Conv2dKernel.Geometry(batch: batch, channels: x[1], height: x[2], width: x[3], outChannels: w[0], kernel: w[2],
                                             stride: conv.stride, padding: conv.padding, outHeight: out[2], outWidth: out[3])
        return 4 * Conv2dKernel.scratchFloats(geometry)
    }
}
