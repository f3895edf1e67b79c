/// `patch_embed(image[B,Ci,H,W], weight[C,Ci,P,P], bias[C]) {patch}` -> `[B, (H/P)(W/P), C]`:
/// a convolution with kernel = stride = P, flattened row-major over the patch grid.
public struct PatchEmbed: Hashable, Sendable {
    public let patch: Int

    public init(patch: Int) throws(GraphError) {
        guard Limits.patchSize.contains(patch) else {
            throw .invalidNode(op: OpKind.patchEmbed.rawValue, message: "patch \(patch) is outside \(Limits.patchSize)")
        }
        self.patch = patch
    }

    func outputType(_ c: OpCheck) throws(GraphError) -> ValueType {
        try c.arity(3...3)
        try c.requireFloat()
        let (image, weight, bias) = (c.inputs[0], c.inputs[1], c.inputs[2])
        guard image.rank == 4, weight.rank == 4, bias.rank == 1 else { throw c.fail("expects image[B,C,H,W], weight[O,C,P,P], bias[O]") }
        let (channels, height, width) = (try c.fixed(image, 1, "image"), try c.fixed(image, 2, "image"), try c.fixed(image, 3, "image"))
        let out = try c.fixed(weight, 0, "weight")
        guard try c.fixed(weight, 1, "weight") == channels, try c.fixed(weight, 2, "weight") == patch,
              try c.fixed(weight, 3, "weight") == patch, c.isVector(bias, out) else {
            throw c.fail("weight \(weight) / bias \(bias) do not match image \(image) and patch \(patch)")
        }
        guard height % patch == 0, width % patch == 0 else { throw c.fail("image \(height)x\(width) is not a multiple of patch \(patch)") }
        return ValueType(.f32, [image.shape[0], .fixed((height / patch) * (width / patch)), .fixed(out)])
    }
}
