/// The operations of the canonical IR, at the level a ViT is explained in, each with its
/// attributes as typed values.
///
/// An op's whole contract (inputs, attributes and their valid ranges, output type) lives in
/// one place, `Ops/<Group>.swift`: `Op.outputType(_:)` dispatches there, and the serialised
/// forms (text, JSON) go through `attributeList` / `Op.decode(kind:attributes:)`, which
/// validate the same ranges. Kernels pattern-match on the cases and read typed fields; nothing
/// downstream looks an attribute up by name.
///
/// Signatures (B = batch, N tokens, C channels, S selected tokens):
/// - `patch_embed(image[B,Ci,H,W], weight[C,Ci,P,P], bias[C]) {patch}` -> `[B, Np, C]`
/// - `concat_tokens(cls[1,1,C], (dist[1,1,C],) patches[B,Np,C])` -> `[B, N, C]`
/// - `add(a, b)` -> shape of `a`; `b` has `a`'s shape or a leading 1 broadcast over the batch
/// - `scale(x[...,C], gamma[C])` -> `x * gamma` per channel (LayerScale)
/// - `layer_norm(x[...,C], weight[C], bias[C]) {eps}` over the last axis
/// - `linear(x[...,K], weight[O,K], bias[O]?) {rows?}` -> `[..., O]`, or `[..., end-start]` with
///   `rows: [start, end)`, which uses only those output rows of the weight (q, k or v of a qkv)
/// - `gelu(x)`: exact erf form
/// - `attention(qkv[B,S,3C]) {heads}` or `attention(q, k, v: [B,S,C]) {heads}` -> `[B, S, C]`:
///   multi-head scaled dot-product, scale `(C/heads)^-0.5`, softmax over keys
/// - `token_select(x[B,N,C], qkvWeight[3C,C], qkvBias[3C]?) {heads, keep, prefix}` ->
///   `i32[B, prefix+keep]`: `x` is the block's LN1 output. The prefix (class, distillation)
///   tokens, then the `keep` image tokens of highest score `mean over heads of q_cls,h . k_j,h`
///   (raw, unscaled), in descending score, ties to the lower index
/// - `gather_tokens(x[B,N,C], index[B,S])` -> `[B, S, C]`
/// - `scatter_tokens(x[B,N,C], index[B,S], rows[B,S,C])` -> `[B, N, C]`: `x` with the indexed
///   rows replaced; every other row unchanged bit for bit
/// - `take_token(x[B,N,C]) {index}` -> `[B, C]`
/// - `mean(a, b, ...)`: elementwise mean of same-shaped values
///
/// LV-ViT's (`Ops/Convolution.swift`, `Ops/Scaling.swift`):
/// - `conv2d(x[B,Ci,H,W], weight[O,Ci,K,K], bias[O]?) {stride, padding}` -> `[B, O, H', W']`
/// - `batch_norm(x[B,C,H,W], weight[C], bias[C], mean[C], var[C]) {eps}` (eval mode)
/// - `relu(x)`
/// - `divide(x) {divisor}` -> `x / divisor` (skip_lam; the aux head's 0.5 as / 2)
/// - `max_tokens(x[B,N,C]) {start}` -> `[B, C]`: max over tokens `start..<N`
public enum Op: Hashable, Sendable {
    case patchEmbed(PatchEmbed)
    case concatTokens
    case add
    case scale
    case layerNorm(LayerNorm)
    case linear(Linear)
    case gelu
    case attention(Attention)
    case tokenSelect(TokenSelect)
    case gatherTokens
    case scatterTokens
    case takeToken(TakeToken)
    case mean
    case conv2d(Conv2d)
    case batchNorm(BatchNorm)
    case relu
    case divide(Divide)
    case maxTokens(MaxTokens)

    /// The op's name, without attributes.
    public var kind: OpKind {
        switch self {
        case .patchEmbed: return .patchEmbed
        case .concatTokens: return .concatTokens
        case .add: return .add
        case .scale: return .scale
        case .layerNorm: return .layerNorm
        case .linear: return .linear
        case .gelu: return .gelu
        case .attention: return .attention
        case .tokenSelect: return .tokenSelect
        case .gatherTokens: return .gatherTokens
        case .scatterTokens: return .scatterTokens
        case .takeToken: return .takeToken
        case .mean: return .mean
        case .conv2d: return .conv2d
        case .batchNorm: return .batchNorm
        case .relu: return .relu
        case .divide: return .divide
        case .maxTokens: return .maxTokens
        }
    }

    /// The output type for these input types, or why the inputs do not fit the op.
    public func outputType(_ inputs: [ValueType]) throws(GraphError) -> ValueType {
        let check = OpCheck(kind: kind, inputs: inputs)
        switch self {
        case .patchEmbed(let op): return try op.outputType(check)
        case .concatTokens: return try TokenOps.concatType(check)
        case .add: return try Elementwise.addType(check)
        case .scale: return try Elementwise.scaleType(check)
        case .layerNorm(let op): return try op.outputType(check)
        case .linear(let op): return try op.outputType(check)
        case .gelu: return try Elementwise.unaryType(check)
        case .attention(let op): return try op.outputType(check)
        case .tokenSelect(let op): return try op.outputType(check)
        case .gatherTokens: return try TokenOps.gatherType(check)
        case .scatterTokens: return try TokenOps.scatterType(check)
        case .takeToken(let op): return try op.outputType(check)
        case .mean: return try Elementwise.meanType(check)
        case .conv2d(let op): return try op.outputType(check)
        case .batchNorm(let op): return try op.outputType(check)
        case .relu: return try Elementwise.unaryType(check)
        case .divide(let op): return try op.outputType(check)
        case .maxTokens(let op): return try op.outputType(check)
        }
    }

    /// The attributes in key order, for the text and JSON forms.
    public var attributeList: [(key: String, value: AttributeValue)] {
        switch self {
        case .patchEmbed(let op): return [("patch", .int(op.patch))]
        case .layerNorm(let op): return [("eps", .float(op.eps))]
        case .linear(let op): return op.rows.map { [("rows", .ints([$0.lowerBound, $0.upperBound]))] } ?? []
        case .attention(let op): return [("heads", .int(op.heads))]
        case .tokenSelect(let op): return [("heads", .int(op.heads)), ("keep", .int(op.keep)), ("prefix", .int(op.prefix))]
        case .takeToken(let op): return [("index", .int(op.index))]
        case .conv2d(let op): return [("stride", .int(op.stride)), ("padding", .int(op.padding))]
        case .batchNorm(let op): return [("eps", .float(op.eps))]
        case .divide(let op): return [("divisor", .float(op.divisor))]
        case .maxTokens(let op): return [("start", .int(op.start))]
        case .concatTokens, .add, .scale, .gelu, .gatherTokens, .scatterTokens, .mean, .relu: return []
        }
    }

    /// Reads an op from its serialised form, validating every attribute once; unknown or
    /// missing attributes are errors.
    public static func decode(kind: OpKind, attributes: [(key: String, value: AttributeValue)]) throws(GraphError) -> Op {
        var reader = AttributeReader(kind: kind, pairs: attributes)
        let op: Op
        switch kind {
        case .patchEmbed: op = .patchEmbed(try PatchEmbed(patch: try reader.int("patch")))
        case .concatTokens: op = .concatTokens
        case .add: op = .add
        case .scale: op = .scale
        case .layerNorm: op = .layerNorm(try LayerNorm(eps: try reader.double("eps")))
        case .linear: op = .linear(try Linear(rows: try reader.optionalRange("rows")))
        case .gelu: op = .gelu
        case .attention: op = .attention(try Attention(heads: try reader.int("heads")))
        case .tokenSelect:
            op = .tokenSelect(try TokenSelect(heads: try reader.int("heads"), keep: try reader.int("keep"), prefix: try reader.int("prefix")))
        case .gatherTokens: op = .gatherTokens
        case .scatterTokens: op = .scatterTokens
        case .takeToken: op = .takeToken(try TakeToken(index: try reader.int("index")))
        case .mean: op = .mean
        case .conv2d: op = .conv2d(try Conv2d(stride: try reader.int("stride"), padding: try reader.int("padding")))
        case .batchNorm: op = .batchNorm(try BatchNorm(eps: try reader.double("eps")))
        case .relu: op = .relu
        case .divide: op = .divide(try Divide(divisor: try reader.double("divisor")))
        case .maxTokens: op = .maxTokens(try MaxTokens(start: try reader.int("start")))
        }
        try reader.finish()
        return op
    }
}

/// Op names as they appear in the text and JSON forms.
public enum OpKind: String, Sendable, CaseIterable, Codable {
    case patchEmbed = "patch_embed"
    case concatTokens = "concat_tokens"
    case add
    case scale
    case layerNorm = "layer_norm"
    case linear
    case gelu
    case attention
    case tokenSelect = "token_select"
    case gatherTokens = "gather_tokens"
    case scatterTokens = "scatter_tokens"
    case takeToken = "take_token"
    case mean
    case conv2d
    case batchNorm = "batch_norm"
    case relu
    case divide
    case maxTokens = "max_tokens"
}

/// An attribute value in the serialised forms.
public enum AttributeValue: Hashable, Sendable, CustomStringConvertible {
    case int(Int)
    case float(Double)
    case ints([Int])

    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .float(let v): return formatDouble(v)
        case .ints(let v): return "[" + v.map(String.init).joined(separator: ", ") + "]"
        }
    }
}

/// Shortest text that reads back to the same Double (`1e-06`, `0.5`).
public func formatDouble(_ value: Double) -> String {
    if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
    return "\(value)"
}

/// Reads the attributes of one serialised op, each exactly once and with its type checked.
struct AttributeReader {
    let kind: OpKind
    private var remaining: [(key: String, value: AttributeValue)]

    init(kind: OpKind, pairs: [(key: String, value: AttributeValue)]) {
        self.kind = kind
        remaining = pairs
    }

    private func fail(_ message: String) -> GraphError { .invalidNode(op: kind.rawValue, message: message) }

    private mutating func take(_ key: String) -> AttributeValue? {
        guard let index = remaining.firstIndex(where: { $0.key == key }) else { return nil }
        return remaining.remove(at: index).value
    }

    mutating func int(_ key: String) throws(GraphError) -> Int {
        guard case .int(let v)? = take(key) else { throw fail("needs an integer attribute '\(key)'") }
        return v
    }

    mutating func double(_ key: String) throws(GraphError) -> Double {
        switch take(key) {
        case .float(let v)?: return v
        case .int(let v)?: return Double(v)
        default: throw fail("needs a number attribute '\(key)'")
        }
    }

    mutating func optionalRange(_ key: String) throws(GraphError) -> Range<Int>? {
        guard let value = take(key) else { return nil }
        guard case .ints(let v) = value, v.count == 2, v[0] >= 0, v[0] < v[1] else {
            throw fail("attribute '\(key)' must be [start, end) with 0 <= start < end")
        }
        return v[0]..<v[1]
    }

    /// Every attribute must have been read: an unknown one is a mistake, not an extension.
    func finish() throws(GraphError) {
        if let extra = remaining.first { throw fail("has no attribute '\(extra.key)'") }
    }
}
