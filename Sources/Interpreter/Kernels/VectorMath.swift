/// Vectorised exp and erf on eight Float lanes, for softmax and GELU.
///
/// The library's `expf` and `erff` are scalar calls: DeiT-S at batch 1 evaluates ~2.8 M
/// exponentials and ~3.6 M error functions per image, which as calls cost more than a third
/// of the matrix products. These are plain `SIMD8<Float>` arithmetic, so they compile for the
/// x86-64 baseline (two SSE registers per vector) and run on any CPU; nothing here needs a
/// target feature or run-time dispatch. The coefficients were fitted for this file (weighted
/// least squares iterated towards minimax, then checked in Float32 arithmetic):
/// - `exp` (x <= 0): relative error <= 1.2e-7 (about 1 ulp) on [-87, 0];
/// - `erf`: absolute error <= 3.5e-7 (the fit is 1.6e-8; the rest is Float32 rounding), the
///   argument clamped to [-3.92, 3.92] where erf rounds to +-1; GELU ends within ~1e-6
///   absolute of the exact value everywhere and within 2e-7 relative for x > 0.
/// The standard erf and exp are within an ulp, PyTorch's vectorised erf within ~1.5e-7.
typealias Float8 = SIMD8<Float>

enum VectorMath {
    // exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2];
    // ln 2 is split in two so that n * ln2High is exact for the n that occur.
    private static let log2e: Float = 1.442695040888963
    private static let ln2High: Float = 0.693145751953125
    private static let ln2Low: Float = 1.4286068203094173e-06
    // Adding 1.5 * 2^23 rounds to the nearest integer with plain adds (no SSE4.1 roundps),
    // and leaves that integer in the low mantissa bits.
    private static let roundingMagic: Float = 12_582_912
    // exp(r) = 1 + r + r^2 * c(r), c of degree 4.
    private static let e0: Float = 0.4999999345133524
    private static let e1: Float = 0.1666652068534512
    private static let e2: Float = 0.04166838742856398
    private static let e3: Float = 0.0083687102951982
    private static let e4: Float = 0.0013814610889417902

    /// e^x per lane for x <= 0 (softmax arguments after subtracting the row maximum). Lanes
    /// below -87 give e^-87 ~ 1.6e-38 instead of something smaller: next to a row sum >= 1,
    /// no softmax can tell. Positive lanes are not supported.
    @_transparent
    static func expNonPositive(_ x: Float8) -> Float8 {
        let clamped = atLeast(x, -87)
        let t = clamped * log2e + roundingMagic
        let n = t - roundingMagic
        let r = (clamped - n * ln2High) - n * ln2Low
        let r2 = r * r
        let c = (e0 + e1 * r) + r2 * ((e2 + e3 * r) + r2 * e4)
        let er = 1 + r + r2 * c
        // 2^n: (n + 127) << 23 as a bit pattern; n is t's bits minus the magic's bits.
        let bits = unsafeBitCast(t, to: SIMD8<Int32>.self) &- roundingMagic.bitPattern.asInt32 &+ 127
        return er * unsafeBitCast(bits &<< 23, to: Float8.self)
    }

    // erf(z) = z P(z^2) / Q(z^2) on [-3.92, 3.92]; beyond, erf rounds to +-1 in Float32.
    private static let erfLimit: Float = 3.92
    private static let p0: Float = 1.1283790224168746
    private static let p1: Float = 0.19276322470737622
    private static let p2: Float = 0.05306037120621128
    private static let p3: Float = 0.0038682910968106405
    private static let p4: Float = 0.0002874784850011723
    private static let p5: Float = 2.034740637817157e-06
    private static let q1: Float = 0.5041636269428219
    private static let q2: Float = 0.1150842744960962
    private static let q3: Float = 0.01517222427878538
    private static let q4: Float = 0.0011881061165488608
    private static let q5: Float = 3.807065152352875e-05

    @_transparent
    static func erf(_ x: Float8) -> Float8 {
        let z = clamp(x, -erfLimit, erfLimit)
        // Estrin's scheme: pairs of coefficients, then u^2 and u^4, so the dependency chains
        // are 4 operations long instead of Horner's 10 (the loop was latency bound).
        let u = z * z
        let u2 = u * u
        let u4 = u2 * u2
        let p = (p0 + p1 * u) + u2 * (p2 + p3 * u) + u4 * (p4 + p5 * u)
        let q = (1 + q1 * u) + u2 * (q2 + q3 * u) + u4 * (q4 + q5 * u)
        return z * p / q
    }

    /// Exact-form GELU, 0.5 x (1 + erf(x / sqrt 2)). Near |z| = 3.92 the rational can exceed
    /// 1 by an ulp; 1 + erf is kept >= 0 so that very negative x give 0, not x * 1e-7. (On the
    /// positive side an ulp over 1 is a 1e-7 relative error, within the fit.)
    @_transparent
    static func gelu(_ x: Float8) -> Float8 {
        0.5 * x * atLeast(1 + erf(x * 0.70710678118654752), 0)
    }

    // The standard library's `clamped` and `pointwiseMin/Max` on SIMD8<Float> compile to
    // per-lane scalar code with NaN handling, and lane loops (`a < b ? b : a` per lane) are
    // vectorised only sometimes, otherwise left as a branchy loop through memory. A compare
    // against a constant and `replacing` becomes maxps/minps reliably.
    @_transparent
    static func clamp(_ x: Float8, _ low: Float, _ high: Float) -> Float8 {
        atMost(atLeast(x, low), high)
    }

    @_transparent
    static func atLeast(_ x: Float8, _ low: Float) -> Float8 {
        x.replacing(with: low, where: x .< low)
    }

    @_transparent
    static func atMost(_ x: Float8, _ high: Float) -> Float8 {
        x.replacing(with: high, where: x .> high)
    }

    @_transparent
    static func maximum(_ a: Float8, _ b: Float8) -> Float8 {
        a.replacing(with: b, where: a .< b)
    }

    @_transparent
    static func horizontalMax(_ v: Float8) -> Float {
        let a = maximum(v, Float8(lowHalf: v.highHalf, highHalf: v.lowHalf))
        return Swift.max(Swift.max(a[0], a[1]), Swift.max(a[2], a[3]))
    }

    /// Loads up to 8 floats (the rest of the lanes 0), for the tails of rows.
    @_transparent
    static func load(_ p: UnsafePointer<Float>, count: Int) -> Float8 {
        if count >= 8 { return UnsafeRawPointer(p).loadUnaligned(as: Float8.self) }
        var v = Float8()
        for i in 0..<count { v[i] = p[i] }
        return v
    }

    @_transparent
    static func store(_ v: Float8, _ p: UnsafeMutablePointer<Float>, count: Int) {
        if count >= 8 {
            UnsafeMutableRawPointer(p).storeBytes(of: v, as: Float8.self)
            return
        }
        for i in 0..<count { p[i] = v[i] }
    }
}

extension UInt32 {
    @_transparent var asInt32: Int32 { Int32(bitPattern: self) }
}
