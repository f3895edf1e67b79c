// Part of kernels_template.h (included there, once per instruction set): vector maths and
// partial loads and stores.

// ---------------------------------------------------------------------------------------------
// Vector maths: the same approximations (and coefficients) as Sources/Interpreter/Kernels/
// VectorMath.swift, fitted for this project: exp within 1.2e-7 relative on [-87, 0], erf within
// 3.5e-7 absolute. FMA where the Swift code has a separate multiply and add changes results in
// the last bit only.

static inline vf ISA_NAME(v_exp_nonpositive)(vf x) {
    // exp(x) = 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 with ln 2 split so that n ln2High
    // is exact. Arguments below -87 give e^-87: next to a softmax row sum >= 1 nothing can tell.
    const vf clamped = V_MAX(V_SET1(-87.0f), x);
    const vf t = V_FMA(clamped, V_SET1(1.442695040888963f), V_SET1(12582912.0f));
    const vf n = V_SUB(t, V_SET1(12582912.0f));
    const vf r = V_FMA(n, V_SET1(-1.4286068203094173e-06f), V_FMA(n, V_SET1(-0.693145751953125f), clamped));
    const vf r2 = V_MUL(r, r);
    const vf low = V_FMA(V_SET1(0.1666652068534512f), r, V_SET1(0.4999999345133524f));
    const vf high = V_FMA(r2, V_SET1(0.0013814610889417902f), V_FMA(V_SET1(0.0083687102951982f), r, V_SET1(0.04166838742856398f)));
    const vf c = V_FMA(r2, high, low);
    const vf er = V_FMA(r2, c, V_ADD(r, V_SET1(1.0f)));
    return V_MUL(er, V_POW2N(t));
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

