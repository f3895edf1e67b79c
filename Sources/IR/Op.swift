/// The operations of the canonical IR, at the level a ViT is explained in.
///
/// Signatures (B = batch, N tokens, C channels, S selected tokens):
/// - `patch_embed(image[B,3,H,W], weight[C,3,P,P], bias[C]) {patch}` -> `[B, Np, C]`
/// - `concat_tokens(cls[1,1,C], (dist[1,1,C],) patches[B,Np,C])` -> `[B, N, C]`
/// - `add(a, b)` -> shape of `a`; `b` has `a`'s shape or a leading 1 broadcast over the batch
/// - `layer_norm(x[...,C], weight[C], bias[C]) {eps}` over the last axis
/// - `linear(x[...,K], weight[O,K], bias[O]) {rows: [start, end]?}` -> `[..., end-start]`;
///   `rows` uses only output rows `[start, end)` of the weight (q, k or v out of a fused qkv)
/// - `gelu(x)`: exact erf form
/// - `attention(qkv[B,S,3C]) {heads}` or `attention(q[B,S,C], k[B,S,C], v[B,S,C]) {heads}` ->
///   `[B, S, C]`: multi-head scaled dot-product, scale `(C/heads)^-0.5`, softmax over keys
/// - `token_select(x[B,N,C], qkvWeight[3C,C], qkvBias[3C]) {heads, keep, prefix}` ->
///   `i32[B, prefix+keep]`: `x` is the block's LN1 output. The prefix (class, distillation)
///   tokens, then the `keep` image tokens of highest score `mean over heads of q_cls,h . k_j,h`
///   (raw, unscaled), in descending score, ties to the lower index. Computed in double as
///   `((W_k^T q_cls) . x_j + q_cls . b_k) / heads`, the same number without rounding k
/// - `gather_tokens(x[B,N,C], index[B,S])` -> `[B, S, C]`
/// - `scatter_tokens(x[B,N,C], index[B,S], rows[B,S,C])` -> `[B, N, C]`: `x` with the
///   indexed rows replaced; every other row unchanged bit for bit
/// - `take_token(x[B,N,C]) {index}` -> `[B, C]`
/// - `mean(a, b, ...)`: elementwise mean of same-shaped values
public enum OpKind: String, Sendable, CaseIterable, Codable {
    case patchEmbed = "patch_embed"
    case concatTokens = "concat_tokens"
    case add
    case layerNorm = "layer_norm"
    case linear
    case gelu
    case attention
    case tokenSelect = "token_select"
    case gatherTokens = "gather_tokens"
    case scatterTokens = "scatter_tokens"
    case takeToken = "take_token"
    case mean
}

/// A node attribute value.
public enum AttributeValue: Hashable, Sendable, CustomStringConvertible {
    case int(Int)
    case float(Double)
    case ints([Int])
    case string(String)

    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .float(let v): return formatDouble(v)
        case .ints(let v): return "[" + v.map(String.init).joined(separator: ", ") + "]"
        case .string(let v): return "\"" + v + "\""
        }
    }
}

/// Shortest text that reads back to the same Double (`1e-06`, `0.5`).
public func formatDouble(_ value: Double) -> String {
    if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
    return "\(value)"
}

/// Node attributes, kept in key order so text and JSON forms are deterministic.
public struct Attributes: Hashable, Sendable, Sequence {
    public private(set) var entries: [(key: String, value: AttributeValue)] = []

    public init() {}

    public init(_ pairs: KeyValuePairs<String, AttributeValue>) {
        for (key, value) in pairs { self[key] = value }
    }

    public subscript(key: String) -> AttributeValue? {
        get { entries.first { $0.key == key }?.value }
        set {
            entries.removeAll { $0.key == key }
            if let newValue {
                entries.append((key, newValue))
                entries.sort { $0.key < $1.key }
            }
        }
    }

    public func int(_ key: String) -> Int? {
        if case .int(let v)? = self[key] { return v }
        return nil
    }

    public func double(_ key: String) -> Double? {
        switch self[key] {
        case .float(let v)?: return v
        case .int(let v)?: return Double(v)
        default: return nil
        }
    }

    public func ints(_ key: String) -> [Int]? {
        if case .ints(let v)? = self[key] { return v }
        return nil
    }

    public var isEmpty: Bool { entries.isEmpty }

    public func makeIterator() -> IndexingIterator<[(key: String, value: AttributeValue)]> {
        entries.makeIterator()
    }

    public static func == (lhs: Attributes, rhs: Attributes) -> Bool {
        lhs.entries.map(\.key) == rhs.entries.map(\.key) && lhs.entries.map(\.value) == rhs.entries.map(\.value)
    }

    public func hash(into hasher: inout Hasher) {
        for entry in entries {
            hasher.combine(entry.key)
            hasher.combine(entry.value)
        }
    }
}

extension Attributes: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, AttributeValue)...) {
        self.init()
        for (key, value) in elements { self[key] = value }
    }
}
