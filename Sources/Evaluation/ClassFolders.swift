import IR

/// Reads the labels of an image folder from its layout: one subfolder per class, named by its
/// ImageNet-1k WordNet id (`val/n01440764/ILSVRC2012_val_00000293.JPEG`, the ImageNet validation
/// layout) or by its class index (`val/0/...`). Every visible entry of a class folder is a
/// candidate image (ImageNet's files end in `.JPEG`; a file that is not an image is reported
/// as failed, not skipped silently). Entries beside the class folders have no label and are
/// reported as failed too.
public enum ClassFolders {
    public static func scan(_ root: String, classes: Int) throws(EvaluationError) -> LabelledImages {
        let names = try listFolder(root)
        var files: [LabelledFile] = []
        var kinds: (wordNet: String?, index: String?) = (nil, nil)
        var classFolders = 0
        for name in names {
            let path = joinPath(root, name)
            let kind = FileKind(path: path)
            guard kind == .folder else {
                let reason = kind == .regular ? "outside any class folder, so it has no label" : kind.reasonNotAnImage
                files.append(LabelledFile(path: path, label: nil, problem: reason))
                continue
            }
            guard let label = ClassLabel(name) else {
                throw .folder(path: path, reason: "the folder name is neither an ImageNet-1k WordNet id (like n01440764) nor a class index (like 0); "
                              + "class folders are named by one or the other, or pass --labels-file")
            }
            let index: Int
            switch label.classIndex(classes: classes) {
            case .success(let value): index = value
            case .failure(let problem): throw .folder(path: path, reason: problem.description)
            }
            if label.isWordNet { kinds.wordNet = kinds.wordNet ?? name } else { kinds.index = kinds.index ?? name }
            if let a = kinds.wordNet, let b = kinds.index {
                throw .folder(path: root, reason: "class folders mix WordNet ids ('\(a.escapedForMessage)') and class indices ('\(b.escapedForMessage)'); use one naming")
            }
            classFolders += 1
            for entry in try listFolder(path) {
                let file = joinPath(path, entry)
                let entryKind = FileKind(path: file)
                files.append(LabelledFile(path: file, label: index, problem: entryKind == .regular ? nil : entryKind.reasonNotAnImage))
            }
        }
        guard classFolders > 0 else {
            throw .folder(path: root, reason: "no class folders: expected one subfolder per class, named by ImageNet WordNet id (n01440764) or class index (0), or pass --labels-file")
        }
        guard files.contains(where: { $0.problem == nil }) else {
            throw .folder(path: root, reason: "the class folders hold no files")
        }
        return LabelledImages(sorting: files, layout: kinds.wordNet != nil ? .wordNetFolders : .indexFolders)
    }
}
