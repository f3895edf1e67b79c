import IR

/// Appends ONNX nodes and constants to a graph draft: the vocabulary `OpTranslation` is written
/// in. Value names come from the IR: the node that finishes an IR op writes the IR value's own
/// name (`blocks.3.attn.qkv`), and the steps before it write `<that name>/<step>`, so every
/// ONNX value says which IR value (and so which timm module) it belongs to. Small constants are
/// shared by value; subgraphs several IR ops need (a weight's transpose, an index's flat row
/// numbers) are built once.
struct GraphEmitter {
    private(set) var graph: ONNXGraphDraft
    let opset: Int
    private var names = Set<String>()
    private var constants: [String: String] = [:]
    private var derived: [String: String] = [:]
    /// The graph's image input, whose first dimension is the batch every shape is built from.
    private var batchSource: String?

    init(name: String, opset: Int) {
        graph = ONNXGraphDraft(name: name)
        self.opset = opset
    }

    /// Registers a name the graph defines (input, initializer, node output); names are unique.
    mutating func claim(_ name: String) throws(ONNXExportError) {
        guard names.insert(name).inserted else { throw .unsupported(node: name, reason: "the name is defined twice") }
    }

    mutating func addInput(_ info: ONNXValueInfo) throws(ONNXExportError) {
        try claim(info.name)
        graph.inputs.append(info)
        if batchSource == nil { batchSource = info.name }
    }

    mutating func addOutput(_ info: ONNXValueInfo) { graph.outputs.append(info) }

    mutating func addInitializer(_ initializer: ONNXInitializerDraft) throws(ONNXExportError) {
        try claim(initializer.name)
        graph.initializers.append(initializer)
    }

    /// One node with one output named `output` (also the node's name).
    @discardableResult
    mutating func emit(_ opType: String, _ inputs: [String], _ output: String,
                       _ attributes: [(name: String, value: ONNXAttributeValue)] = []) throws(ONNXExportError) -> String {
        try emit(opType, inputs, outputs: [output], attributes)
        return output
    }

    mutating func emit(_ opType: String, _ inputs: [String], outputs: [String],
                       _ attributes: [(name: String, value: ONNXAttributeValue)] = []) throws(ONNXExportError) {
        for output in outputs { try claim(output) }
        graph.nodes.append(ONNXNodeDraft(name: outputs[0], opType: opType, inputs: inputs, outputs: outputs, attributes: attributes))
    }

    // MARK: constants

    /// An int64 constant (shape [] for a scalar, [n] for a list unless `shape` says otherwise).
    mutating func int64s(_ values: [Int], shape: [Int]? = nil) throws(ONNXExportError) -> String {
        let dims = shape ?? [values.count]
        let name = "const.i64" + (dims == [values.count] ? "" : describeShape(dims)) + "." + values.map(String.init).joined(separator: ",")
        return try constant(name, ONNXInitializerDraft(name: name, dims: dims, payload: .int64s(values.map(Int64.init))))
    }

    mutating func int64Scalar(_ value: Int) throws(ONNXExportError) -> String { try int64s([value], shape: []) }

    /// A Float32 scalar.
    mutating func floatScalar(_ value: Float) throws(ONNXExportError) -> String {
        let name = "const.f32.\(value)"
        return try constant(name, ONNXInitializerDraft(name: name, dims: [], payload: .floats([value])))
    }

    private mutating func constant(_ name: String, _ initializer: ONNXInitializerDraft) throws(ONNXExportError) -> String {
        if let existing = constants[name] { return existing }
        try addInitializer(initializer)
        constants[name] = name
        return name
    }

    /// Builds a derived value once: later requests with the same key get the first one's name.
    mutating func once(_ key: String, _ build: (inout GraphEmitter) throws(ONNXExportError) -> String) throws(ONNXExportError) -> String {
        if let existing = derived[key] { return existing }
        let value = try build(&self)
        derived[key] = value
        return value
    }

    // MARK: shared subgraphs

    /// `[batch]` as an int64 list, read from the image input's first dimension at run time:
    /// shapes built from it follow the batch instead of freezing the one seen at export. One
    /// Shape node for the whole graph.
    mutating func batchDimension() throws(ONNXExportError) -> String {
        guard let source = batchSource else { throw .unsupported(node: "(graph)", reason: "has no input to take the batch size from") }
        return try once("batch") { (e) throws(ONNXExportError) in
            try e.emit("Shape", [source], source + "/batch", [("start", .int(0)), ("end", .int(1))])
        }
    }

    /// `[batch, rest...]` as an int64 list, built once per `rest`.
    mutating func batchShape(_ rest: [Int]) throws(ONNXExportError) -> String {
        try once("batch shape \(rest)") { (e) throws(ONNXExportError) in
            let batch = try e.batchDimension()
            return try e.emit("Concat", [batch, try e.int64s(rest)], batch + describeShape(rest), [("axis", .int(0))])
        }
    }

    /// A `[1, ...]` value repeated over the batch: `Expand` to `[batch, rest...]`.
    mutating func expandOverBatch(_ value: String, rest: [Int], output: String) throws(ONNXExportError) -> String {
        try emit("Expand", [value, try batchShape(rest)], output)
    }

    /// A `[out, in]` weight as `[in, out]` for MatMul: a Transpose of the initializer, which
    /// ONNX Runtime folds into a constant when it loads the model. The initializer keeps timm's
    /// name and layout, so the file's weights map one to one onto a timm state dict.
    mutating func transposed(_ weight: String) throws(ONNXExportError) -> String {
        try once("transpose " + weight) { (e) throws(ONNXExportError) in
            try e.emit("Transpose", [weight], weight + "/transposed", [("perm", .ints([1, 0]))])
        }
    }

    /// Rows `[start, end)` of a weight or bias (q, k or v of a fused qkv), a folded Slice.
    mutating func rows(_ weight: String, _ range: Range<Int>) throws(ONNXExportError) -> String {
        try once("rows \(range) of " + weight) { (e) throws(ONNXExportError) in
            try e.emit("Slice", [weight, try e.int64s([range.lowerBound]), try e.int64s([range.upperBound]), try e.int64s([0])],
                       weight + "/rows.\(range.lowerBound)-\(range.upperBound)")
        }
    }

    /// A `[B, N, C]` value as `[B * N, C]` rows (a Reshape, no copy in ONNX Runtime).
    mutating func flattenedRows(_ value: String, channels: Int) throws(ONNXExportError) -> String {
        try once("rows of " + value) { (e) throws(ONNXExportError) in
            try e.emit("Reshape", [value, try e.int64s([-1, channels])], value + "/as_rows")
        }
    }

    /// Token indices `[B, S]` (per image, into `N` tokens) as row numbers of the flattened
    /// `[B * N, C]` tensor: `index + N * b`. One Gather (and one ScatterND) on the flattened rows
    /// then moves whole C-float rows, instead of GatherElements' element-by-element indexing.
    mutating func flatRowIndex(_ index: String, tokens: Int) throws(ONNXExportError) -> String {
        let starts = try once("image starts \(tokens)") { (e) throws(ONNXExportError) in
            // N * b for every image b, as a column [B, 1]; shared by every layer of N tokens.
            let base = try e.batchDimension() + "/image_starts_\(tokens)"
            let batch = try e.emit("Squeeze", [try e.batchDimension(), try e.int64s([0])], base + "/batch_scalar")
            let limit = try e.emit("Mul", [batch, try e.int64Scalar(tokens)], base + "/limit")
            let starts = try e.emit("Range", [try e.int64Scalar(0), limit, try e.int64Scalar(tokens)], base + "/row")
            return try e.emit("Unsqueeze", [starts, try e.int64s([1])], base)
        }
        return try once("flat rows of \(index) in \(tokens)") { (e) throws(ONNXExportError) in
            try e.emit("Add", [index, starts], index + "/rows_of_\(tokens)")
        }
    }
}
