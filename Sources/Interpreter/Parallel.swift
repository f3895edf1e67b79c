#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Runs `body(task, slot)` for every task in `0..<count` on up to `threads` threads.
///
/// Tasks are claimed one at a time from a shared counter, so a thread the OS keeps off the CPU
/// (a busy machine) delays nothing: the others take its tasks. `slot` (0 for the caller, below
/// `threads`) names the thread running the task, for per-thread scratch. Which thread runs a
/// task never changes what the task computes, so results stay deterministic.
func parallelTasks(_ count: Int, threads: Int, _ body: (_ task: Int, _ slot: Int) -> Void) {
    let workers = min(threads, count)
    if workers <= 1 {
        for task in 0..<count { body(task, 0) }
        return
    }
    let counter = TaskCounter()
    withoutActuallyEscaping(body) { body in
        WorkerPool.shared.run(workers) { slot in
            while true {
                let task = counter.next()
                if task >= count { return }
                body(task, slot)
            }
        }
    }
}

/// Splits `count` items into contiguous chunks for `parallelTasks`. Work smaller than `grain`
/// items per thread runs inline: waking a thread would cost more than it saves. Two chunks per
/// thread let a thread that runs take over from one that does not.
func parallelChunks(_ count: Int, threads: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
    let workers = min(threads, max(1, count / max(grain, 1)))
    if workers <= 1 {
        body(0..<count)
        return
    }
    let chunks = min(count, 2 * workers)
    parallelTasks(chunks, threads: workers) { chunk, _ in
        let start = chunk * count / chunks
        let end = (chunk + 1) * count / chunks
        if start < end { body(start..<end) }
    }
}

func onlineCoreCount() -> Int {
    max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
}

private final class TaskCounter: @unchecked Sendable {
    private let value = Atomic<Int>(0)
    @inline(__always) func next() -> Int { value.wrappingAdd(1, ordering: .relaxed).oldValue }
}

/// Persistent worker threads for the kernels' parallel regions.
///
/// A forward pass has one to two hundred parallel regions of 20 us to a few ms each. Dispatch's
/// `concurrentPerform` wakes its workers through the kernel for every region, which on a
/// 2-core Linux machine costs tens of microseconds, often as much as the region itself. Here
/// the caller is slot 0 and the pool's threads wait for the next region by spinning on a
/// generation counter for a short while (regions follow each other within microseconds during
/// a run), then yield, then sleep on a condition variable so an idle process burns no CPU.
///
/// A region does not wait for threads that have not started on it: the caller runs the body
/// too, and since bodies claim tasks until none are left, once the caller's body returns all
/// work is claimed. The caller then closes the region's gate and waits only for the threads
/// inside; a thread that arrives later finds the gate closed and goes back to waiting.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    private static let closed = 1 << 40

    private let generation = Atomic<Int>(0)
    /// `closed` bit | number of pool threads inside the current region.
    private let gate = Atomic<Int>(closed)
    private let busy = Atomic<Bool>(false)
    private let sleepers = Atomic<Int>(0)
    /// The region being run and how many slots it has; written by the caller before it opens
    /// the gate (release), read by threads after entering it (acquire).
    private var job: ((Int) -> Void)?
    private var active = 0
    private var threads = 0
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    /// Waiting is a short spin, then spinning with `sched_yield` so that other runnable
    /// threads get the CPU, then (for idle pool threads) sleeping on the condition.
    private let yieldAfter = 2_000
    private let sleepAfter = 30_000

    private init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    func run(_ workers: Int, _ body: @escaping (Int) -> Void) {
        // Regions do not nest; a region started while another runs (another interpreter on
        // another thread) simply runs on its caller.
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            body(0)
            return
        }
        grow(to: workers - 1)
        job = body
        active = workers
        gate.store(0, ordering: .releasing)
        generation.add(1, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            pthread_mutex_lock(&mutex)
            pthread_cond_broadcast(&condition)
            pthread_mutex_unlock(&mutex)
        }
        body(0)
        gate.bitwiseOr(WorkerPool.closed, ordering: .acquiringAndReleasing)
        var spins = 0
        while gate.load(ordering: .acquiring) != WorkerPool.closed {
            spins += 1
            if spins > yieldAfter { sched_yield() }
        }
        job = nil
        busy.store(false, ordering: .releasing)
    }

    private func grow(to count: Int) {
        while threads < count {
            threads += 1
            let context = Unmanaged.passRetained(WorkerContext(pool: self, slot: threads)).toOpaque()
            var thread = pthread_t()
            let status = pthread_create(&thread, nil, { raw in
                let context = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                context.pool.workerLoop(slot: context.slot)
                return nil
            }, context)
            precondition(status == 0, "cannot start a worker thread")
            pthread_detach(thread)
        }
    }

    private func workerLoop(slot: Int) {
        var seen = 0
        while true {
            var spins = 0
            var current = generation.load(ordering: .acquiring)
            while current == seen {
                spins += 1
                if spins > yieldAfter { sched_yield() }
                if spins >= sleepAfter {
                    pthread_mutex_lock(&mutex)
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    while generation.load(ordering: .sequentiallyConsistent) == seen { pthread_cond_wait(&condition, &mutex) }
                    sleepers.subtract(1, ordering: .relaxed)
                    pthread_mutex_unlock(&mutex)
                    spins = 0
                }
                current = generation.load(ordering: .acquiring)
            }
            seen = current
            if enter() {
                if slot < active { perform(slot) }
                gate.subtract(1, ordering: .releasing)
            }
        }
    }

    /// Joins the open region, if there is one.
    private func enter() -> Bool {
        var value = gate.load(ordering: .acquiring)
        while value & WorkerPool.closed == 0 {
            let (exchanged, original) = gate.compareExchange(expected: value, desired: value + 1, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            value = original
        }
        return false
    }

    /// Runs this thread's share. Its own function so that the thread's reference to the
    /// closure is gone before it leaves the gate: the caller's `withoutActuallyEscaping`
    /// checks that nothing still holds it.
    @inline(never)
    private func perform(_ slot: Int) {
        job?(slot)
    }
}

private final class WorkerContext {
    let pool: WorkerPool
    let slot: Int
    init(pool: WorkerPool, slot: Int) {
        self.pool = pool
        self.slot = slot
    }
}
