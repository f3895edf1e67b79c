#if canImport(Glibc)
import Glibc
#endif
import IR

/// Time per kind of kernel (`linear`, `linear+gelu`, `attention`, ...) summed over runs, for
/// `InterpreterOptions.profile` (`IDLEVIT_PROFILE=1`): wall time, process CPU time (all
/// threads; cpu / wall near the thread count means the kernel kept every worker busy) and, for
/// matrix kernels, GFLOP/s and its share of the FMA peak measured on as many threads just
/// before the table is printed (`FMAPeak`). The table goes to stderr when the interpreter is
/// released, so it never mixes with a command's stdout.
final class Profile {
    private struct Entry { var calls = 0; var wall = 0.0; var cpu = 0.0; var flops = 0.0 }
    private var totals: [String: Entry] = [:]
    private var runs = 0

    struct Mark { var wall: Double; var cpu: Double }

    func start() -> Mark { Mark(wall: Timing.monotonic, cpu: Timing.processCPU) }

    func add(_ label: String, since mark: Mark, flops: Double) {
        let wall = Timing.monotonic - mark.wall
        let cpu = Timing.processCPU - mark.cpu
        var entry = totals[label] ?? Entry()
        entry.calls += 1
        entry.wall += wall
        entry.cpu += cpu
        entry.flops += flops
        totals[label] = entry
    }

    func finishRun() { runs += 1 }

    func report(kernels: CPUKernels, threads: Int) {
        guard runs > 0 else { return }
        let peak = FMAPeak.measure(kernels, threads: threads, seconds: 0.1).flopsPerSecond
        let n = Double(runs)
        let wall = totals.values.reduce(0) { $0 + $1.wall }
        let cpu = totals.values.reduce(0) { $0 + $1.cpu }
        var text = "profile over \(runs) runs, per run (\(kernels.isa.rawValue) kernels; FMA peak on \(threads) threads now: "
            + "\(format(peak / 1e9, 1)) GFLOP/s):\n"
        text += row(["kernel", "calls", "wall ms", "%", "cpu ms", "GFLOP/s", "% peak"])
        for (label, e) in totals.sorted(by: { $0.value.wall > $1.value.wall }) {
            let rate = e.flops / max(e.wall, 1e-12)
            text += row([label, String(e.calls / runs), format(1e3 * e.wall / n, 3), format(100 * e.wall / max(wall, 1e-12), 1),
                         format(1e3 * e.cpu / n, 3), e.flops > 0 ? format(rate / 1e9, 1) : "",
                         e.flops > 0 ? format(100 * rate / peak, 1) : ""])
        }
        let flops = totals.values.reduce(0) { $0 + $1.flops }
        text += row(["total", "", format(1e3 * wall / n, 3), "", format(1e3 * cpu / n, 3), format(flops / max(wall, 1e-12) / 1e9, 1),
                     format(100 * flops / max(wall, 1e-12) / peak, 1)])
        // Straight to file descriptor 2: the C `stderr` global is off limits in Swift 6.
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    private func row(_ cells: [String]) -> String {
        let widths = [30, 7, 11, 7, 11, 9, 8]
        var line = ""
        for (i, cell) in cells.enumerated() {
            let fill = String(repeating: " ", count: max(0, widths[i] - cell.count))
            line += i == 0 ? cell + fill : fill + cell
        }
        return line + "\n"
    }

    private func format(_ value: Double, _ decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        var text = String((value * scale).rounded() / scale)
        if let dot = text.firstIndex(of: ".") {
            let have = text.distance(from: dot, to: text.endIndex) - 1
            if have < decimals { text += String(repeating: "0", count: decimals - have) }
        }
        return text
    }
}
