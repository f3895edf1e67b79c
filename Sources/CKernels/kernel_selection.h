// Part of kernels_template.h (included there, once per instruction set): the Double sums of
// IdleViT's token selection (Sources/Interpreter/Kernels/TokenSelect.swift). Float operands
// are widened to Double eight at a time (each product of two Floats is exact in Double);
// eight Double lanes accumulate and are added in lane order at the end, so a result depends
// on the instruction set only through FMA's single rounding of a Double x Float product.

// 64-byte vectors pass between this file's static, inlined helpers only: no ABI crosses.
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wpsabi"

typedef double ISA_NAME(vd8) __attribute__((ext_vector_type(8)));
typedef float ISA_NAME(vf8) __attribute__((ext_vector_type(8)));

static inline ISA_NAME(vd8) ISA_NAME(widen8)(const float *p) {
    ISA_NAME(vf8) v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, ISA_NAME(vd8));
}

static inline ISA_NAME(vd8) ISA_NAME(load8d)(const double *p) {
    ISA_NAME(vd8) v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline double ISA_NAME(lanes_sum)(ISA_NAME(vd8) v) {
    double s = 0;
    for (int i = 0; i < 8; i++) s += v[i];
    return s;
}

// sum_i a[i] b[i] over n elements; `load_a` widens eight of a's elements (Float or Double).
#define SELECTION_DOT(name, a_type, load_a)                                                                        \
    static double ISA_NAME(name)(const a_type *a, const float *b, size_t n) {                                     \
        ISA_NAME(vd8) acc = 0;                                                                                    \
        size_t i = 0;                                                                                             \
        for (; i + 8 <= n; i += 8) acc += load_a(a + i) * ISA_NAME(widen8)(b + i);                                \
        double s = ISA_NAME(lanes_sum)(acc);                                                                      \
        for (; i < n; i++) s += (double)a[i] * (double)b[i];                                                      \
        return s;                                                                                                 \
    }
SELECTION_DOT(dot_ff, float, ISA_NAME(widen8))
SELECTION_DOT(dot_df, double, ISA_NAME(load8d))
#undef SELECTION_DOT

// out[r * out_stride] = sum_i a[r * stride + i] b[i] for r < 4: four `dot_ff`s, each summed exactly as
// `dot_ff` sums it, with the four rows read side by side. The rows come from memory (the qkv
// weight, once per idle block), and on the Zen 2 host one sequential stream per thread read
// ~13 GB/s where four side by side read ~20 GB/s.
static void ISA_NAME(dot4_ff)(const float *a, size_t stride, const float *b, size_t n, double *out, size_t out_stride) {
    ISA_NAME(vd8) acc[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const ISA_NAME(vd8) x = ISA_NAME(widen8)(b + i);
        for (int r = 0; r < 4; r++) acc[r] += ISA_NAME(widen8)(a + r * stride + i) * x;
    }
    for (int r = 0; r < 4; r++) {
        double s = ISA_NAME(lanes_sum)(acc[r]);
        for (size_t j = i; j < n; j++) s += (double)a[r * stride + j] * (double)b[j];
        out[r * out_stride] = s;
    }
}

// y[0..<n] = sum over r < rows of coefficients[r] * w[r * stride ..< + n], four rows per sweep
// of y (y is loaded and stored a quarter as often): rows t, t + q, t + 2q, t + 3q for t < q =
// rows / 4, so that the four stream from memory side by side (see dot4_ff), then the rows left.
static void ISA_NAME(axpy_rows_df)(const float *w, size_t stride, size_t rows, const double *coefficients, size_t n,
                                   double *y) {
    for (size_t i = 0; i < n; i++) y[i] = 0;
    const size_t quarter = rows / 4;
    for (size_t t = 0; t < quarter; t++) {
        const double a0 = coefficients[t], a1 = coefficients[t + quarter], a2 = coefficients[t + 2 * quarter],
                     a3 = coefficients[t + 3 * quarter];
        const float *w0 = w + t * stride, *w1 = w0 + quarter * stride, *w2 = w1 + quarter * stride, *w3 = w2 + quarter * stride;
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            ISA_NAME(vd8) sum = a0 * ISA_NAME(widen8)(w0 + i);
            sum += a1 * ISA_NAME(widen8)(w1 + i);
            sum += a2 * ISA_NAME(widen8)(w2 + i);
            sum += a3 * ISA_NAME(widen8)(w3 + i);
            const ISA_NAME(vd8) updated = ISA_NAME(load8d)(y + i) + sum;
            memcpy(y + i, &updated, sizeof updated);
        }
        for (; i < n; i++) y[i] += a0 * (double)w0[i] + a1 * (double)w1[i] + a2 * (double)w2[i] + a3 * (double)w3[i];
    }
    for (size_t r = 4 * quarter; r < rows; r++) {
        const double a = coefficients[r];
        const float *row = w + r * stride;
        for (size_t i = 0; i < n; i++) y[i] += a * (double)row[i];
    }
}

#pragma clang diagnostic pop
