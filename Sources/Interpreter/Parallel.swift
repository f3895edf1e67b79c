#if canImport(Glibc)
import Glibc
#endif
import Dispatch

/// Kernels hand raw pointers into disjoint parts of one arena to worker threads; the type
/// system cannot see the disjointness, so the closure crosses threads in this box.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
}

/// Runs `body(worker)` for `workers` workers in parallel and returns when all are done.
func parallelWorkers(_ workers: Int, _ body: (Int) -> Void) {
    if workers <= 1 {
        body(0)
        return
    }
    withoutActuallyEscaping(body) { escapable in
        let box = UncheckedSendable(value: escapable)
        DispatchQueue.concurrentPerform(iterations: workers) { box.value($0) }
    }
}

/// Splits `count` items into contiguous chunks run on up to `threads` workers. Work smaller
/// than `grain` items per worker runs inline: spawning would cost more than it saves.
func parallelChunks(_ count: Int, threads: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
    let workers = min(threads, max(1, count / max(grain, 1)))
    if workers <= 1 {
        body(0..<count)
        return
    }
    let chunk = (count + workers - 1) / workers
    parallelWorkers(workers) { worker in
        let start = worker * chunk
        let end = min(count, start + chunk)
        if start < end { body(start..<end) }
    }
}

func onlineCoreCount() -> Int {
    max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
}
