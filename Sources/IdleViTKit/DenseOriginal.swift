extension PreparedModel {
    /// The same model without its IdleViT schedule: the graph as imported (a bundle's dense
    /// graph, before its stored schedule is applied). `eval --compare-dense` runs it beside the
    /// idle graph on the same decoded images.
    public var denseOriginal: PreparedModel {
        PreparedModel(loaded: loaded, graph: loaded.graph, schedule: nil)
    }
}
