/// The ops of a convolutional stem (LV-ViT's `patch_embed`: conv 7x7/2, then two conv 3x3,
/// each followed by BatchNorm and ReLU), on NCHW images.

/// `conv2d(x[B,Ci,H,W], weight[O,Ci,K,K], bias[O]?) {stride, padding}` -> `[B, O, H', W']` with
/// `H' = (H + 2 padding - K) / stride + 1` (floor), zero padding on every side: torch's
/// `Conv2d(Ci, O, K, stride, padding)` with square kernels, no dilation, no groups. The bias is
/// absent for a convolution followed by BatchNorm (LV-ViT's stem), present when an exporter
/// folded the BatchNorm into it.
public struct Conv2d: Hashable, Sendable {
    public let stride: Int
    public let padding: Int

    public init(stride: Int, padding: Int) throws(GraphError) {
        // Bounded like a patch: a stride or padding beyond any image is a corrupt attribute.
        guard Limits.patchSize.contains(stride), padding >= 0, padding <= Limits.patchSize.maximum else {
            throw .invalidNode(op: OpKind.conv2d.rawValue,
                               message: "needs stride in \(Limits.patchSize) and padding in 0...\(Limits.patchSize.maximum) (has \(stride), \(padding))")
        }
        self.stride = stride
        self.padding = padding
    }

    /// The output extent of one spatial axis, or nil when the kernel does not fit.
    public func outputExtent(input: Int, kernel: Int) -> Int? {
        let padded = input + 2 * padding
        guard kernel >= 1, padded >= kernel else { return nil }
        return (padded - kernel) / stride + 1
    }

    func outputType(_ c: OpCheck) throws(GraphError) -> ValueType {
        try c.arity(2...3)
        try c.requireFloat()
        let (x, weight) = (c.inputs[0], c.inputs[1])
        guard x.rank == 4, weight.rank == 4 else { throw c.fail("expects x[B,C,H,W], weight[O,C,K,K], bias[O]?, has \(x), \(weight)") }
        let (channels, height, width) = (try c.fixed(x, 1, "x"), try c.fixed(x, 2, "x"), try c.fixed(x, 3, "x"))
        let (out, kernel) = (try c.fixed(weight, 0, "weight"), try c.fixed(weight, 2, "weight"))
        guard try c.fixed(weight, 1, "weight") == channels, try c.fixed(weight, 3, "weight") == kernel else {
            throw c.fail("weight \(weight) is not a square kernel over the \(channels) channels of \(x)")
        }
        if c.inputs.count == 3, !c.isVector(c.inputs[2], out) { throw c.fail("bias \(c.inputs[2]) does not match \(out) output channels") }
        guard let h = outputExtent(input: height, kernel: kernel), let w = outputExtent(input: width, kernel: kernel) else {
            throw c.fail("kernel \(kernel) does not fit image \(height)x\(width) with padding \(padding)")
        }
        return ValueType(.f32, [x.shape[0], .fixed(out), .fixed(h), .fixed(w)])
    }
}

/// `batch_norm(x[B,C,H,W], weight[C], bias[C], running_mean[C], running_var[C]) {eps}` -> x's
/// type: BatchNorm2d in eval mode, `(x - mean) / sqrt(var + eps) * weight + bias` per channel
/// (axis 1). It reads the checkpoint's own four tensors; nothing is folded into the graph.
public struct BatchNorm: Hashable, Sendable {
    public let eps: Double

    public init(eps: Double) throws(GraphError) {
        guard eps.isFinite, eps >= 0, eps < 1 else {
            throw .invalidNode(op: OpKind.batchNorm.rawValue, message: "eps \(eps) is outside [0, 1)")
        }
        self.eps = eps
    }

    func outputType(_ c: OpCheck) throws(GraphError) -> ValueType {
        try c.arity(5...5)
        try c.requireFloat()
        let x = c.inputs[0]
        guard x.rank == 4 else { throw c.fail("expects x[B,C,H,W], has \(x)") }
        let channels = try c.fixed(x, 1, "x")
        for parameter in c.inputs.dropFirst() where !c.isVector(parameter, channels) {
            throw c.fail("parameter \(parameter) does not match the \(channels) channels of \(x)")
        }
        return x
    }
}
