#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Seconds on the POSIX clocks the tools measure with: wall time (monotonic) for timings and
/// timeouts, process and thread CPU time for profiles and the decoders' share (the standard
/// library's `Clock` has no CPU-time clocks).
public enum Timing {
    public static func seconds(_ id: clockid_t) -> Double {
        var time = timespec()
        clock_gettime(id, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }

    /// Wall time, never set back.
    public static var monotonic: Double { seconds(CLOCK_MONOTONIC) }
    /// CPU time of the whole process.
    public static var processCPU: Double { seconds(CLOCK_PROCESS_CPUTIME_ID) }
    /// CPU time of the calling thread.
    public static var threadCPU: Double { seconds(CLOCK_THREAD_CPUTIME_ID) }
}
