#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import IR
import Images

/// Files -> batches of model input, decoded and preprocessed on worker threads while the
/// caller runs the model on the previous batch.
///
///     files (sorted) --workers claim the next index--> slot ring (window entries)
///                    --next(): in file order, failures set aside--> Batch [n, 3, S, S]
///
/// Workers may run at most `window` entries ahead of what `next()` has taken, so memory is
/// bounded by the batch size whatever the number of files: the window's preprocessed images
/// (2 batches by default) plus the batch being run.
///
/// Every batch tensor has the same size, so the interpreter plans (and allocates an arena for)
/// one batch size only: the files are split into n = ceil(files / maximum) equal batches of
/// ceil(files / n) <= maximum images (100 files at most 32 a batch: 4 batches of 25), failed
/// files do not leave holes (the next images fill the batch), and a last batch that comes out
/// short is padded with zero images, whose outputs the caller ignores. Padding costs fewer
/// than n images of compute in all (under one batch's worth when files fail). The order of
/// images and failures is the order of `files`, whatever order the workers finish in.
public final class ImageBatchStream {
    public struct Batch {
        /// `pixel_values` [batchSize, 3, S, S]: the images of `files` in its first rows, zeros
        /// after them; nil when the entries since the last batch all failed.
        public var pixels: FloatTensor?
        /// The images in the first rows of `pixels`, in order.
        public var files: [LabelledFile]
        /// Entries that could not be used since the previous batch, in order.
        public var failed: [FailedFile]
        /// Decoder notes (lossy conversions), per file.
        public var notes: [(path: String, note: String)]
        /// Entries taken from the list so far (images and failures), for progress.
        public var entriesDone: Int
    }

    /// Rows of every batch tensor: the balanced size, at most the maximum asked for.
    public let batchSize: Int
    public let entryCount: Int
    private let shared: SharedState
    private let preprocessor: ImagePreprocessor

    /// Starts `workers` threads decoding `files` in order, for batches of at most `maximumBatch`.
    public init(files: [LabelledFile], maximumBatch: Int, workers: Int, preprocessor: ImagePreprocessor, window: Int? = nil) {
        precondition(maximumBatch > 0 && workers > 0)
        let balanced = ImageBatchStream.balancedBatch(entries: files.count, maximum: maximumBatch)
        batchSize = balanced
        self.preprocessor = preprocessor
        entryCount = files.count
        shared = SharedState(files: files, window: max(window ?? 2 * balanced, 1))
        for _ in 0..<min(workers, max(files.count, 1)) {
            let thread = Thread { [shared, preprocessor] in shared.work(preprocessor) }
            thread.stackSize = 4 << 20
            thread.name = "idlevit-decode"
            thread.start()
        }
    }

    /// Workers stop after the file they are on.
    deinit { shared.stop() }

    /// CPU seconds the workers have spent reading, decoding and preprocessing so far.
    public var decodeSeconds: Double { shared.decodeSeconds }

    /// ceil(entries / n) for n = ceil(entries / maximum) batches: equal batches, none above `maximum`.
    public static func balancedBatch(entries: Int, maximum: Int) -> Int {
        guard entries > 0 else { return 1 }
        let batches = (entries + maximum - 1) / maximum
        return (entries + batches - 1) / batches
    }

    /// The next batch, or nil when every entry has been handed out.
    public func next() -> Batch? {
        let taken = shared.take(images: batchSize)
        guard !taken.entries.isEmpty else { return nil }
        var files: [LabelledFile] = [], failed: [FailedFile] = [], notes: [(String, String)] = []
        var images: [[Float]] = []
        for (file, result) in taken.entries {
            switch result {
            case .image(let values, let fileNotes):
                files.append(file)
                images.append(values)
                notes += fileNotes.map { (file.path, $0) }
            case .failed(let reason):
                failed.append(FailedFile(path: file.path, reason: reason))
            }
        }
        var pixels: FloatTensor?
        if !images.isEmpty {
            let size = preprocessor.transform.imageSize
            let perImage = preprocessor.valuesPerImage
            // Zero-initialised: rows after the images are the padding.
            let (storage, memory) = TensorStorage.allocate(byteCount: batchSize * perImage * MemoryLayout<Float>.size)
            let floats = memory.assumingMemoryBound(to: Float.self)
            for (i, values) in images.enumerated() {
                values.withUnsafeBufferPointer { (floats + i * perImage).update(from: $0.baseAddress!, count: perImage) }
            }
            pixels = FloatTensor(shape: [batchSize, 3, size, size], storage: storage, pointer: UnsafePointer(floats))
        }
        return Batch(pixels: pixels, files: files, failed: failed, notes: notes, entriesDone: taken.done)
    }

    // MARK: the shared state

    enum Outcome {
        case image([Float], notes: [String])
        case failed(String)
    }

    /// The slot ring and the counters, under one lock; the workers hold this, not the stream,
    /// so dropping the stream stops them.
    final class SharedState: @unchecked Sendable {
        private let condition = NSCondition()
        private let files: [LabelledFile]
        private let window: Int
        private var slots: [Outcome?]
        /// The next entry a worker may claim, and the next one `take` hands out.
        private var claimed = 0, taken = 0
        private var stopped = false
        private var cpuSeconds = 0.0

        var decodeSeconds: Double {
            condition.lock()
            defer { condition.unlock() }
            return cpuSeconds
        }

        init(files: [LabelledFile], window: Int) {
            self.files = files
            self.window = window
            slots = Array(repeating: nil, count: window)
        }

        func stop() {
            condition.lock()
            stopped = true
            condition.broadcast()
            condition.unlock()
        }

        /// A worker's loop: claim the next entry inside the window, prepare it, store it.
        func work(_ preprocessor: ImagePreprocessor) {
            lowerThreadPriority()
            var values: [Float] = []
            while true {
                condition.lock()
                while !stopped, claimed < files.count, claimed >= taken + window { condition.wait() }
                if stopped || claimed >= files.count {
                    condition.unlock()
                    return
                }
                let index = claimed
                claimed += 1
                condition.unlock()

                let file = files[index]
                let start = Timing.threadCPU
                let outcome: Outcome
                if let problem = file.problem {
                    outcome = .failed(problem)
                } else {
                    values = []
                    values.reserveCapacity(preprocessor.valuesPerImage)
                    do {
                        let notes = try preprocessor.prepare(path: file.path, into: &values)
                        outcome = .image(values, notes: notes)
                    } catch {
                        outcome = .failed(error.reason)
                    }
                }
                let spent = Timing.threadCPU - start
                condition.lock()
                slots[index % window] = outcome
                cpuSeconds += spent
                condition.broadcast()
                condition.unlock()
            }
        }

        /// The entries from the last one taken up to and including the `images`-th usable
        /// image (or the end), waiting for workers as needed; and how many entries are taken.
        func take(images: Int) -> (entries: [(LabelledFile, Outcome)], done: Int) {
            var entries: [(LabelledFile, Outcome)] = []
            var found = 0
            condition.lock()
            defer { condition.unlock() }
            while found < images, taken < files.count {
                while slots[taken % window] == nil { condition.wait() }
                let outcome = slots[taken % window]!
                slots[taken % window] = nil
                if case .image = outcome { found += 1 }
                entries.append((files[taken], outcome))
                taken += 1
                condition.broadcast()  // the window moved: a waiting worker may claim
            }
            return (entries, taken)
        }
    }
}

/// Decoding is a few percent of the model's work and runs ahead of it, so the decoders yield
/// to the model's threads: at nice 10 a decoder gets about a tenth of a core when it competes
/// with them (more than it needs) and rarely preempts one in the middle of a parallel region,
/// whose end would then wait for the preempted thread. On Linux the nice value belongs to the
/// thread, and `who` = 0 names the calling thread (setpriority(2), notes); failure is harmless.
func lowerThreadPriority() {
    #if os(Linux)
    _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
    #endif
}
