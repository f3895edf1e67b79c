import IR
import Importers
import Interpreter

/// Pass rule for one activation: max |ours - ref| <= atol + rtol * max |ref| (DESIGN §1).
public struct Tolerance: Sendable {
    public var absolute: Double
    public var relative: Double

    public init(absolute: Double = 1e-4, relative: Double = 1e-4) {
        self.absolute = absolute
        self.relative = relative
    }
}

/// How one float activation compares with its reference.
public struct ActivationComparison: Sendable {
    public var name: String
    public var shape: [Int]
    public var maxAbsError: Double
    /// max |ours - ref| / max |ref|: the error relative to the activation's scale (element-wise
    /// ratios explode where the reference crosses zero and say nothing).
    public var maxRelError: Double
    public var cosine: Double
    public var passed: Bool
    /// Set when we could not compare at all (missing activation, shape mismatch).
    public var problem: String?
}

/// How one `blocks.{i}.selected` compares: the fraction of images whose selected set equals
/// the reference's, and how many tokens differ in all.
public struct SelectionComparison: Sendable {
    public var name: String
    public var agreement: Double
    public var images: Int
    public var differingTokens: Int
    public var problem: String?
    public var passed: Bool { problem == nil && agreement == 1 }
}

public struct VerificationReport: Sendable {
    public var activations: [ActivationComparison]
    public var selections: [SelectionComparison]
    /// Reference tensors deliberately not compared, with the reason.
    public var notCompared: [(String, String)]
    public var passed: Bool { activations.allSatisfy(\.passed) && selections.allSatisfy(\.passed) }
}

/// A reference file: float activations and integer selections by name.
public struct ReferenceSet: Sendable {
    public var floats: [(String, FloatTensor)] = []
    public var indices: [(String, [Int], [Int])] = []

    public init() {}

    /// Reads every tensor of a reference file. Tensors that are not aligned F32 are copied
    /// (converted floats, integer indices as Int): their bytes are added up from the header
    /// and checked against `maximumConvertedBytes` before any is copied.
    public static func load(path: String, maximumConvertedBytes: Int = Limits.defaultMemoryBudgetBytes) throws(ImportError) -> ReferenceSet {
        let file = try SafetensorsFile(path: path)
        var converted = 0
        for entry in file.entries where entry.dtype != .F32 {
            let elements = entry.dataRange.count / entry.dtype.size
            converted += elements * (entry.dtype.isInteger ? 8 : 4)
        }
        guard converted <= maximumConvertedBytes else {
            throw .invalidFile(file: displayName(path), format: "reference",
                               rule: "its non-F32 tensors take \(converted) bytes once converted, over the memory budget of \(maximumConvertedBytes) bytes (raise it with --max-memory)")
        }
        var set = ReferenceSet()
        for entry in file.entriesInFileOrder {
            if entry.dtype.isInteger {
                set.indices.append((entry.name, entry.shape, try file.integerValues(entry)))
            } else {
                set.floats.append((entry.name, try file.floatTensor(entry)))
            }
        }
        return set
    }

    public var names: [String] { floats.map(\.0) + indices.map(\.0) }
}

public enum Verifier {
    /// Compares every reference entry with our activation of the same name. Names for which
    /// `skip` returns a reason are listed as not compared instead.
    public static func compare(_ ours: [String: Activation], with reference: ReferenceSet, tolerance: Tolerance = Tolerance(),
                               skip: (String) -> String? = { _ in nil }) -> VerificationReport {
        var report = VerificationReport(activations: [], selections: [], notCompared: [])
        for (name, ref) in reference.floats {
            if let reason = skip(name) { report.notCompared.append((name, reason)); continue }
            guard let activation = ours[name] else {
                report.activations.append(ActivationComparison(name: name, shape: ref.shape, maxAbsError: .infinity, maxRelError: .infinity,
                                                               cosine: 0, passed: false, problem: "no activation of that name in the graph"))
                continue
            }
            guard let tensor = activation.floatTensor, tensor.shape == ref.shape else {
                report.activations.append(ActivationComparison(name: name, shape: ref.shape, maxAbsError: .infinity, maxRelError: .infinity,
                                                               cosine: 0, passed: false,
                                                               problem: "shape \(describeShape(activation.shape)) but the reference has \(describeShape(ref.shape))"))
                continue
            }
            report.activations.append(compare(name: name, tensor, ref, tolerance: tolerance))
        }
        for (name, shape, values) in reference.indices {
            if let reason = skip(name) { report.notCompared.append((name, reason)); continue }
            report.selections.append(compareSelection(name: name, ours: ours[name], referenceShape: shape, reference: values))
        }
        return report
    }

    public static func compare(name: String, _ ours: FloatTensor, _ ref: FloatTensor, tolerance: Tolerance) -> ActivationComparison {
        var maxAbs = 0.0, maxRef = 0.0, dot = 0.0, normOurs = 0.0, normRef = 0.0
        var nonFinite = false
        for i in 0..<ref.count {
            let a = Double(ours.pointer[i]), r = Double(ref.pointer[i])
            if !a.isFinite || !r.isFinite { nonFinite = true; continue }
            maxAbs = max(maxAbs, abs(a - r))
            maxRef = max(maxRef, abs(r))
            dot += a * r
            normOurs += a * a
            normRef += r * r
        }
        let cosine = normOurs > 0 && normRef > 0 ? dot / (normOurs.squareRoot() * normRef.squareRoot()) : (normOurs == normRef ? 1 : 0)
        let relative = maxRef > 0 ? maxAbs / maxRef : (maxAbs == 0 ? 0 : .infinity)
        let passed = !nonFinite && maxAbs <= tolerance.absolute + tolerance.relative * maxRef
        return ActivationComparison(name: name, shape: ref.shape, maxAbsError: nonFinite ? .nan : maxAbs, maxRelError: relative,
                                    cosine: cosine, passed: passed, problem: nonFinite ? "non-finite values" : nil)
    }

    static func compareSelection(name: String, ours: Activation?, referenceShape: [Int], reference: [Int]) -> SelectionComparison {
        guard case .indices(let shape, let values)? = ours else {
            return SelectionComparison(name: name, agreement: 0, images: referenceShape.first ?? 0, differingTokens: 0,
                                       problem: ours == nil ? "no selection of that name (is --keep-ratio set?)" : "not a selection")
        }
        guard shape == referenceShape, shape.count == 2 else {
            return SelectionComparison(name: name, agreement: 0, images: referenceShape.first ?? 0, differingTokens: 0,
                                       problem: "we select \(describeShape(shape)) tokens, the reference \(describeShape(referenceShape))")
        }
        let (images, width) = (shape[0], shape[1])
        var agreeing = 0, differing = 0
        for b in 0..<images {
            let mine = Set(values[b * width..<(b + 1) * width].map(Int.init))
            let theirs = Set(reference[b * width..<(b + 1) * width])
            if mine == theirs { agreeing += 1 }
            differing += mine.symmetricDifference(theirs).count / 2
        }
        return SelectionComparison(name: name, agreement: images == 0 ? 1 : Double(agreeing) / Double(images), images: images,
                                   differingTokens: differing, problem: nil)
    }
}
