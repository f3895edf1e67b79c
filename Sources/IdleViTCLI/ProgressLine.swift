#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Evaluation
import Foundation
import IR

/// `eval`'s progress on stderr: images done / total, images per second, time left, running
/// top-1. On a terminal one line is rewritten in place (at most 5 times a second); with
/// `--progress always` into a file or pipe, a line is written at most every 2 seconds.
final class ProgressLine {
    private let enabled: Bool
    private let terminal: Bool
    private var lastWrite = -Double.infinity
    private var written = false

    init(mode: ProgressMode) {
        terminal = isatty(STDERR_FILENO) == 1
        switch mode {
        case .auto: enabled = terminal
        case .always: enabled = true
        case .never: enabled = false
        }
    }

    func update(_ progress: EvaluationProgress) {
        guard enabled else { return }
        let now = Timing.monotonic
        let last = progress.done == progress.total
        guard last || now - lastWrite >= (terminal ? 0.2 : 2) else { return }
        lastWrite = now
        let rate = progress.seconds > 0 ? Double(progress.done) / progress.seconds : 0
        let left = rate > 0 ? Double(progress.total - progress.done) / rate : .nan
        let text = "\(grouped(progress.done))/\(grouped(progress.total)) images  \(fixed(rate, 1)) images/s  "
            + "ETA \(clock(left))  top-1 \(fixed(100 * progress.top1, 2))%"
        write(terminal ? "\r" + text + "\u{1B}[K" : text + "\n")
        written = true
    }

    /// Ends the rewritten line so later output starts on its own line.
    func finish() {
        if enabled, terminal, written { write("\n") }
        written = false
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    private func clock(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0, seconds < 1e7 else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
