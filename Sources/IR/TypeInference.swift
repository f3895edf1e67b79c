/// Output types of the IR ops, from their input types and attributes. The validator and the
/// graph builders both use this, so a graph cannot claim a type its op does not produce.
public enum TypeInference {
    public static func infer(_ op: OpKind, inputs: [ValueType], attributes: Attributes) throws(GraphError) -> ValueType {
        func fail(_ message: String) -> GraphError { .invalidNode(op: op.rawValue, message: message) }
        func arity(_ allowed: ClosedRange<Int>) throws(GraphError) {
            guard allowed.contains(inputs.count) else {
                throw fail("expects \(allowed.lowerBound == allowed.upperBound ? "\(allowed.lowerBound)" : "\(allowed.lowerBound)-\(allowed.upperBound)") inputs, has \(inputs.count)")
            }
        }
        func fixed(_ type: ValueType, _ axis: Int, _ what: String) throws(GraphError) -> Int {
            guard let n = type.extent(axis) else { throw fail("\(what) needs a fixed extent on axis \(axis), has \(type)") }
            return n
        }
        func requireFloat(_ types: [ValueType]) throws(GraphError) {
            for t in types where t.elementType != .f32 { throw fail("expects f32 inputs, has \(t)") }
        }

        switch op {
        case .patchEmbed:
            try arity(3...3)
            try requireFloat(inputs)
            let (image, weight, bias) = (inputs[0], inputs[1], inputs[2])
            guard let patch = attributes.int("patch"), patch > 0 else { throw fail("needs a positive 'patch' attribute") }
            guard image.rank == 4, weight.rank == 4, bias.rank == 1 else { throw fail("expects image[B,C,H,W], weight[O,C,P,P], bias[O]") }
            let (channels, height, width) = (try fixed(image, 1, "image"), try fixed(image, 2, "image"), try fixed(image, 3, "image"))
            let out = try fixed(weight, 0, "weight")
            guard try fixed(weight, 1, "weight") == channels, try fixed(weight, 2, "weight") == patch,
                  try fixed(weight, 3, "weight") == patch, try fixed(bias, 0, "bias") == out else {
                throw fail("weight \(weight) / bias \(bias) do not match image \(image) and patch \(patch)")
            }
            guard height % patch == 0, width % patch == 0 else { throw fail("image \(height)x\(width) is not a multiple of patch \(patch)") }
            return ValueType(.f32, [image.shape[0], .fixed((height / patch) * (width / patch)), .fixed(out)])

        case .concatTokens:
            try arity(2...3)
            try requireFloat(inputs)
            let patches = inputs.last!
            guard patches.rank == 3 else { throw fail("expects patches[B,Np,C], has \(patches)") }
            let channels = try fixed(patches, 2, "patches")
            for token in inputs.dropLast() {
                guard token.shape == [.fixed(1), .fixed(1), .fixed(channels)] else { throw fail("token \(token) is not [1, 1, \(channels)]") }
            }
            let count = try fixed(patches, 1, "patches") + inputs.count - 1
            return ValueType(.f32, [patches.shape[0], .fixed(count), .fixed(channels)])

        case .add:
            try arity(2...2)
            try requireFloat(inputs)
            let (a, b) = (inputs[0], inputs[1])
            let broadcast = b.rank == a.rank && b.shape.first == .fixed(1) && Array(b.shape.dropFirst()) == Array(a.shape.dropFirst())
            guard a == b || broadcast else { throw fail("cannot add \(a) and \(b)") }
            return a

        case .layerNorm:
            try arity(3...3)
            try requireFloat(inputs)
            guard let eps = attributes.double("eps"), eps >= 0 else { throw fail("needs a non-negative 'eps' attribute") }
            _ = eps
            let channels = try fixed(inputs[0], inputs[0].rank - 1, "x")
            guard inputs[1].shape == [.fixed(channels)], inputs[2].shape == [.fixed(channels)] else {
                throw fail("weight \(inputs[1]) / bias \(inputs[2]) do not match \(channels) channels")
            }
            return inputs[0]

        case .linear:
            try arity(3...3)
            try requireFloat(inputs)
            let (x, weight, bias) = (inputs[0], inputs[1], inputs[2])
            guard x.rank >= 1, weight.rank == 2, bias.rank == 1 else { throw fail("expects x[...,K], weight[O,K], bias[O]") }
            let (outFeatures, inFeatures) = (try fixed(weight, 0, "weight"), try fixed(weight, 1, "weight"))
            guard try fixed(x, x.rank - 1, "x") == inFeatures else { throw fail("x \(x) does not have \(inFeatures) features for weight \(weight)") }
            guard try fixed(bias, 0, "bias") == outFeatures else { throw fail("bias \(bias) does not match weight \(weight)") }
            var produced = outFeatures
            if let rows = attributes.ints("rows") {
                guard rows.count == 2, rows[0] >= 0, rows[0] < rows[1], rows[1] <= outFeatures else {
                    throw fail("rows \(rows) is not a range inside 0..<\(outFeatures)")
                }
                produced = rows[1] - rows[0]
            }
            return ValueType(.f32, Array(x.shape.dropLast()) + [.fixed(produced)])

        case .gelu:
            try arity(1...1)
            try requireFloat(inputs)
            return inputs[0]

        case .attention:
            try requireFloat(inputs)
            guard let heads = attributes.int("heads"), heads > 0 else { throw fail("needs a positive 'heads' attribute") }
            if inputs.count == 1 {
                let qkv = inputs[0]
                guard qkv.rank == 3 else { throw fail("expects qkv[B,S,3C], has \(qkv)") }
                let packed = try fixed(qkv, 2, "qkv")
                guard packed % 3 == 0, (packed / 3) % heads == 0 else { throw fail("qkv width \(packed) does not split into 3 x \(heads) heads") }
                return ValueType(.f32, [qkv.shape[0], qkv.shape[1], .fixed(packed / 3)])
            }
            try arity(3...3)
            guard inputs[0].rank == 3, inputs[0] == inputs[1], inputs[1] == inputs[2] else {
                throw fail("expects q, k, v of one shape [B,S,C], has \(inputs.map(\.description).joined(separator: ", "))")
            }
            guard try fixed(inputs[0], 2, "q") % heads == 0 else { throw fail("width \(inputs[0]) does not split into \(heads) heads") }
            return inputs[0]

        case .tokenSelect:
            try arity(3...3)
            try requireFloat(inputs)
            let (x, weight, bias) = (inputs[0], inputs[1], inputs[2])
            guard let heads = attributes.int("heads"), heads > 0, let keep = attributes.int("keep"), keep >= 0,
                  let prefix = attributes.int("prefix"), prefix >= 1 else {
                throw fail("needs attributes heads > 0, keep >= 0, prefix >= 1")
            }
            guard x.rank == 3 else { throw fail("expects x[B,N,C], has \(x)") }
            let (tokens, channels) = (try fixed(x, 1, "x"), try fixed(x, 2, "x"))
            guard weight.shape == [.fixed(3 * channels), .fixed(channels)], bias.shape == [.fixed(3 * channels)] else {
                throw fail("expects the block's qkv weight [\(3 * channels), \(channels)] and bias [\(3 * channels)], has \(weight) and \(bias)")
            }
            guard channels % heads == 0 else { throw fail("width \(channels) does not split into \(heads) heads") }
            guard prefix + keep <= tokens else { throw fail("keeps \(keep) of \(tokens - prefix) image tokens") }
            return ValueType(.i32, [x.shape[0], .fixed(prefix + keep)])

        case .gatherTokens:
            try arity(2...2)
            let (x, index) = (inputs[0], inputs[1])
            guard x.elementType == .f32, x.rank == 3, index.elementType == .i32, index.rank == 2 else {
                throw fail("expects x[B,N,C] and i32 index[B,S], has \(x) and \(index)")
            }
            return ValueType(.f32, [x.shape[0], index.shape[1], x.shape[2]])

        case .scatterTokens:
            try arity(3...3)
            let (x, index, rows) = (inputs[0], inputs[1], inputs[2])
            guard x.elementType == .f32, x.rank == 3, index.elementType == .i32, index.rank == 2,
                  rows == ValueType(.f32, [x.shape[0], index.shape[1], x.shape[2]]) else {
                throw fail("expects x[B,N,C], i32 index[B,S], rows[B,S,C], has \(x), \(index), \(rows)")
            }
            return x

        case .takeToken:
            try arity(1...1)
            try requireFloat(inputs)
            guard let index = attributes.int("index"), index >= 0 else { throw fail("needs a non-negative 'index' attribute") }
            guard inputs[0].rank == 3, index < (try fixed(inputs[0], 1, "x")) else { throw fail("cannot take token \(index) of \(inputs[0])") }
            return ValueType(.f32, [inputs[0].shape[0], inputs[0].shape[2]])

        case .mean:
            try requireFloat(inputs)
            guard let first = inputs.first, inputs.allSatisfy({ $0 == first }) else { throw fail("expects one or more inputs of one shape") }
            return first
        }
    }
}

/// What is wrong with a graph.
public enum GraphError: Error, CustomStringConvertible, Equatable {
    case invalidNode(op: String, message: String)
    case inNode(node: String, GraphErrorBox)
    case duplicateName(String)
    case undefinedValue(node: String, value: String)
    case typeMismatch(node: String, declared: String, inferred: String)
    case missingWeights(String)
    case badOutput(String)
    case malformedJSON(String)

    public var description: String {
        switch self {
        case .invalidNode(let op, let message): return "\(op): \(message)"
        case .inNode(let node, let inner): return "node '\(node)': \(inner.error)"
        case .duplicateName(let name): return "value '\(name)' is defined twice"
        case .undefinedValue(let node, let value): return "node '\(node)' reads '\(value)', which is not defined before it"
        case .typeMismatch(let node, let declared, let inferred): return "node '\(node)' declares \(declared) but its op produces \(inferred)"
        case .missingWeights(let name): return "constant '\(name)' has no weights or the wrong element count"
        case .badOutput(let name): return "graph output '\(name)' is not a value of the graph"
        case .malformedJSON(let message): return "IR JSON: \(message)"
        }
    }
}

/// Boxes a nested error so `GraphError` stays a value type.
public final class GraphErrorBox: Equatable, Sendable {
    public let error: GraphError
    public init(_ error: GraphError) { self.error = error }
    public static func == (lhs: GraphErrorBox, rhs: GraphErrorBox) -> Bool { lhs.error == rhs.error }
}
