/// One entry to run the model on, and the class it belongs to (nil when unlabelled: `run --image`).
public struct LabelledFile: Sendable, Equatable {
    public var path: String
    public var label: Int?
    /// Set when listing the folder already showed the entry cannot be an image (a FIFO, a
    /// folder inside a class folder, a file outside any class folder): it is reported as
    /// failed in its place in the order, and never opened.
    public var problem: String?

    public init(path: String, label: Int?, problem: String? = nil) {
        self.path = path
        self.label = label
        self.problem = problem
    }
}

/// Where the labels came from.
public enum LabelLayout: String, Sendable {
    /// One subfolder per class named by its ImageNet-1k WordNet id (the ImageNet validation layout).
    case wordNetFolders = "folder names (ImageNet WordNet ids)"
    /// One subfolder per class named by its class index.
    case indexFolders = "folder names (class indices)"
    /// A `path,label` CSV.
    case labelsFile = "the labels file"
    /// Files without labels (`run --image`).
    case unlabelled = "no labels"
}

/// The entries of an evaluation in the order they are run (sorted by path). Holding the list
/// costs one path per file; the pixels are streamed.
public struct LabelledImages: Sendable {
    public private(set) var files: [LabelledFile]
    public var layout: LabelLayout

    /// Sorts `files` by path (byte order).
    public init(sorting files: [LabelledFile], layout: LabelLayout) {
        self.files = files.sorted { pathPrecedes($0.path, $1.path) }
        self.layout = layout
    }

    /// Files named directly (`run --image a.jpg b.png`), in the order given, unlabelled.
    public init(unlabelled paths: [String]) {
        files = paths.map { LabelledFile(path: $0, label: nil) }
        layout = .unlabelled
    }

    /// `count` entries spread evenly over the sorted list (entry floor(i * n / count) for
    /// i < count): a quick run still sees every part of the folder (every class of an ImageNet
    /// layout, as far as `count` allows), not only its first classes.
    public func limited(to count: Int) -> LabelledImages {
        guard count < files.count else { return self }
        var copy = self
        let n = files.count
        copy.files = (0..<count).map { files[$0 * n / count] }
        return copy
    }
}
