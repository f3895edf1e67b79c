// Part of kernels_template.h (included there, once per instruction set): vector maths and
// partial loads and stores.

// ---------------------------------------------------------------------------------------------
// Vector maths: erf with the same approximation (and coefficients) as Sources/Interpreter/
// Kernels/VectorMath.swift, fitted for this project: within 3.5e-7 absolute (FMA where the
// Swift code has a separate multiply and add changes results in the last bit only). The
// softmax here works in base 2 (`v_exp2_nonpositive`, within 9.3e-8 relative), the Swift one
// (the OpenBLAS engine's) in base e (within 1.2e-7).

// 2^y for y <= 0, for attention's softmax, whose scores come multiplied by log2 e:
// 2^y = 2^n 2^f, n = round(y) (the 1.5 x 2^23 rounding trick), f = y - n in [-1/2, 1/2] exactly,
// 2^f = 1 + f q(f), q of degree 5 fitted for this project (2e-9 relative in exact arithmetic;
// in Float32 within 9.3e-8 of exp2 over [-126, 0], sampled every 1e-5). Arguments below
// -126 give 2^-126: next to a softmax row sum >= 1 nothing can tell. Against exp(x) of the
// scaled score, e^x = 2^n e^r with r = x - n ln 2, this drops the scale's multiplication and
// the two FMAs of the reduction (f is one exact subtraction): DeiT-B attention 2% faster.
static inline vf ISA_NAME(v_exp2_nonpositive)(vf y) {
    const vf clamped = V_MAX(V_SET1(-126.0f), y);
    // t = n + 127 + 1.5 x 2^23 (floats there are 1 apart: the add rounds y to n), for V_POW2N.
    const vf t = V_ADD(clamped, V_SET1(12583039.0f));
    const vf f = V_SUB(clamped, V_SUB(t, V_SET1(12583039.0f)));
    const vf f2 = V_MUL(f, f);
    const vf low = V_FMA(V_SET1(0.24022647917848278f), f, V_SET1(0.6931472027977907f));
    const vf mid = V_FMA(V_SET1(0.009618437324418885f), f, V_SET1(0.05550332602500384f));
    const vf high = V_FMA(V_SET1(0.00015353242192291377f), f, V_SET1(0.0013398821427684608f));
    const vf p = V_FMA(f2, V_FMA(f2, high, mid), low);
    return V_MUL(V_FMA(f, p, V_SET1(1.0f)), V_POW2N(t));
}

static inline vf ISA_NAME(v_erf)(vf x) {
    // erf(z) = z P(z^2) / Q(z^2) on [-3.92, 3.92]; beyond, erf rounds to +-1 in Float32.
    // Estrin's scheme keeps the dependency chains short.
    const vf z = V_MIN(V_SET1(3.92f), V_MAX(V_SET1(-3.92f), x));
    const vf u = V_MUL(z, z);
    const vf u2 = V_MUL(u, u);
    const vf u4 = V_MUL(u2, u2);
    const vf p = V_FMA(u4, V_FMA(V_SET1(2.034740637817157e-06f), u, V_SET1(0.0002874784850011723f)),
                       V_FMA(u2, V_FMA(V_SET1(0.0038682910968106405f), u, V_SET1(0.05306037120621128f)),
                             V_FMA(V_SET1(0.19276322470737622f), u, V_SET1(1.1283790224168746f))));
    const vf q = V_FMA(u4, V_FMA(V_SET1(3.807065152352875e-05f), u, V_SET1(0.0011881061165488608f)),
                       V_FMA(u2, V_FMA(V_SET1(0.01517222427878538f), u, V_SET1(0.1150842744960962f)),
                             V_FMA(V_SET1(0.5041636269428219f), u, V_SET1(1.0f))));
    return V_DIV(V_MUL(z, p), q);
}

// Exact-form GELU, 0.5 x (1 + erf(x / sqrt 2)); 1 + erf kept >= 0 so very negative x give 0.
static inline vf ISA_NAME(v_gelu)(vf x) {
    const vf e = ISA_NAME(v_erf)(V_MUL(x, V_SET1(0.70710678118654752f)));
    return V_MUL(V_MUL(V_SET1(0.5f), x), V_MAX(V_ZERO(), V_ADD(V_SET1(1.0f), e)));
}

// Loads and stores of the first n lanes (n < VL: the rest read as 0 / left alone), for the
// edges of rows and tiles.
static inline vf ISA_NAME(v_load_n)(const float *p, size_t n) {
    if (n >= VL) return V_LOAD(p);
    float lanes[VL] = {0};
    for (size_t i = 0; i < n; i++) lanes[i] = p[i];
    return V_LOAD(lanes);
}

static inline void ISA_NAME(v_store_n)(float *p, vf v, size_t n) {
    if (n >= VL) {
        V_STORE(p, v);
        return;
    }
    float lanes[VL];
    V_STORE(lanes, v);
    for (size_t i = 0; i < n; i++) p[i] = lanes[i];
}

static inline float ISA_NAME(v_sum)(vf v) {
    float lanes[VL];
    V_STORE(lanes, v);
    float s = 0;
    for (int i = 0; i < VL; i++) s += lanes[i];
    return s;
}

