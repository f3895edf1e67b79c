// Part of kernels_template.h (included there, once per instruction set): the register-tile
// microkernels that the GEMM and the attention are built from.

// ---------------------------------------------------------------------------------------------
// The microkernel: one MR x NR tile of C, accumulated over k in registers, then finished there.

typedef struct {
    /// Partial sums of earlier K blocks, added to the accumulators first; at the tile's first
    /// element, rows `ldp` apart (C itself when K is split).
    const float *partial;
    size_t ldp;
    /// At the tile's first column; NULL when absent.
    const float *bias;
    const float *scale;
    /// At the tile's first element, rows `ldr` apart; may be C itself.
    const float *residual;
    size_t ldr;
    /// When non-NULL, row i of the residual is at `residual + residual_rows[i]` instead (rows
    /// picked by a fused gather; never C itself).
    const size_t *residual_rows;
    /// One multiplier per tile row (attention's 1 / softmax sum).
    const float *row_scale;
    int gelu;
} ISA_NAME(Epilogue);

static inline __attribute__((always_inline)) const float *ISA_NAME(residual_row)(const ISA_NAME(Epilogue) *e, size_t i) {
    return e->residual + (e->residual_rows ? e->residual_rows[i] : i * e->ldr);
}

// Rows [0, m) of one panel's tile, accumulated in x0 (columns 0..<VL) and x1 (VL..<NR):
// the epilogue applied, the first n columns stored at c, rows ldc apart.
static inline __attribute__((always_inline)) void ISA_NAME(finish)(const vf *x0s, const vf *x1s, size_t m, size_t n, float *c,
                                                                  size_t ldc, const ISA_NAME(Epilogue) *e) {
    // A whole tile with the epilogues most products have (a bias, and a residual or not), or
    // none: one test for the tile and its rows unrolled, where the general loop below tests
    // every part of the epilogue on every row (DeiT-S's qkv and proj at batch 1: +1-3%, the
    // whole IdleViT r = 0.7 run 1%). Same operations in the same order as the general loop.
    // With GELU the general loop stays: twelve GELUs unrolled need more registers than there
    // are, and ran 2% slower.
    if (m == MR && n == NR && (!e || (!e->partial && !e->row_scale && !e->scale && !e->gelu))) {
        const int bias = e && e->bias, residual = e && e->residual;
        const vf b0 = bias ? V_LOAD(e->bias) : V_ZERO(), b1 = bias ? V_LOAD(e->bias + VL) : V_ZERO();
        if (!residual) {
            _Pragma("clang loop unroll(full)") for (int i = 0; i < MR; i++) {
                V_STORE(c + (size_t)i * ldc, bias ? V_ADD(x0s[i], b0) : x0s[i]);
                V_STORE(c + (size_t)i * ldc + VL, bias ? V_ADD(x1s[i], b1) : x1s[i]);
            }
            return;
        }
        _Pragma("clang loop unroll(full)") for (int i = 0; i < MR; i++) {
            const float *r = ISA_NAME(residual_row)(e, (size_t)i);
            V_STORE(c + (size_t)i * ldc, V_ADD(bias ? V_ADD(x0s[i], b0) : x0s[i], V_LOAD(r)));
            V_STORE(c + (size_t)i * ldc + VL, V_ADD(bias ? V_ADD(x1s[i], b1) : x1s[i], V_LOAD(r + VL)));
        }
        return;
    }
    const size_t n0 = n < VL ? n : VL;
    const size_t n1 = n > VL ? n - VL : 0;
    vf bias0 = V_ZERO(), bias1 = V_ZERO(), scale0 = V_ZERO(), scale1 = V_ZERO();
    if (e && e->bias) {
        bias0 = ISA_NAME(v_load_n)(e->bias, n0);
        bias1 = ISA_NAME(v_load_n)(e->bias + VL, n1);
    }
    if (e && e->scale) {
        scale0 = ISA_NAME(v_load_n)(e->scale, n0);
        scale1 = ISA_NAME(v_load_n)(e->scale + VL, n1);
    }
    for (int i = 0; i < MR; i++) {
        if ((size_t)i >= m) break;
        vf x0 = x0s[i], x1 = x1s[i];
        if (e) {
            if (e->partial) {
                const float *p = e->partial + (size_t)i * e->ldp;
                x0 = V_ADD(x0, ISA_NAME(v_load_n)(p, n0));
                x1 = V_ADD(x1, ISA_NAME(v_load_n)(p + VL, n1));
            }
            if (e->row_scale) {
                const vf s = V_SET1(e->row_scale[i]);
                x0 = V_MUL(x0, s);
                x1 = V_MUL(x1, s);
            }
            if (e->bias) {
                x0 = V_ADD(x0, bias0);
                x1 = V_ADD(x1, bias1);
            }
            if (e->gelu) {
                x0 = ISA_NAME(v_gelu)(x0);
                x1 = ISA_NAME(v_gelu)(x1);
            }
            if (e->scale) {
                x0 = V_MUL(x0, scale0);
                x1 = V_MUL(x1, scale1);
            }
            if (e->residual) {
                const float *r = ISA_NAME(residual_row)(e, (size_t)i);
                x0 = V_ADD(x0, ISA_NAME(v_load_n)(r, n0));
                x1 = V_ADD(x1, ISA_NAME(v_load_n)(r + VL, n1));
            }
        }
        float *out = c + (size_t)i * ldc;
        ISA_NAME(v_store_n)(out, x0, n0);
        ISA_NAME(v_store_n)(out + VL, x1, n1);
    }
}

// The k loop of a tile: STEP(kk) for kk in [0, k), PREFETCH_EVERY steps per iteration (unrolled
// or not: TILE_STEPS_PRAGMA, per instruction set), with one line
// of the prefetch trickle (`prefetch_at`, `prefetch_left`) asked for per PREFETCH_EVERY steps.
#define TRICKLE_K_LOOP(STEP)                                                                                      \
    do {                                                                                                          \
        size_t kk = 0;                                                                                            \
        for (; kk + PREFETCH_EVERY <= k; kk += PREFETCH_EVERY) {                                                  \
            __builtin_prefetch(prefetch_at, 0, 2);                                                                \
            const size_t more = prefetch_left ? 1 : 0;                                                            \
            prefetch_at += 16 * more;                                                                             \
            prefetch_left -= more;                                                                                \
            TILE_STEPS_PRAGMA for (size_t u = 0; u < PREFETCH_EVERY; u++) STEP(kk + u);                           \
        }                                                                                                         \
        for (; kk < k; kk++) STEP(kk);                                                                            \
    } while (0)

// Prefetches `lines` cache lines from `*at` before the k loop, when there are more than the
// loop's trickle (one per PREFETCH_EVERY steps of k) can carry; returns how many are left for
// the trickle.
#define PREFETCH_EVERY 4
static inline __attribute__((always_inline)) size_t ISA_NAME(prefetch_excess)(const float **at, size_t lines, size_t k) {
    const size_t steps = k / PREFETCH_EVERY;
    while (lines > steps) {
        __builtin_prefetch(*at, 0, 2);
        *at += 16;
        lines--;
    }
    return lines;
}

// C[i, j] = finish(sum_kk A[i, kk] B[kk, j]) for i < m <= MR, j < n <= NR, where A[i, kk] is
// a[i * a_rs + kk * a_cs] (a[a_rows[i] + kk * a_cs] when `a_rows` is given: rows picked by a
// fused gather) and B[kk, j] is b[kk * b_ks + j]; b must have NR readable floats per
// kk. Rows of A past m repeat row m - 1 (read, never stored), so no row past the operand is
// touched. Always inlined: the strides are constants at most call sites (a_cs = 1 for
// row-major A), which the compiler folds into the addressing.
//
// `prefetch`: `prefetch_lines` cache lines from there are asked into L2 while the tile runs,
// one every PREFETCH_EVERY steps of k (NULL: none): a steady trickle, since a burst at the
// tile's start would take the miss buffers that the A rows' loads from L2 need.
static inline __attribute__((always_inline)) void ISA_NAME(tile)(
    size_t m, size_t n, size_t k, const float *a, size_t a_rs, size_t a_cs, const size_t *a_rows, const float *b, size_t b_ks,
    float *c, size_t ldc, const ISA_NAME(Epilogue) *e, const float *prefetch, size_t prefetch_lines) {
    vf acc0[MR], acc1[MR];
    const float *rows[MR];
    for (int i = 0; i < MR; i++) {
        acc0[i] = V_ZERO();
        acc1[i] = V_ZERO();
        const size_t row = (size_t)i < m ? (size_t)i : m - 1;
        rows[i] = a + (a_rows ? a_rows[row] : row * a_rs);
    }
    // Past the last line the address stops moving (the same line again costs nothing).
    const float *prefetch_at = prefetch ? prefetch : b;
    size_t prefetch_left = prefetch ? ISA_NAME(prefetch_excess)(&prefetch_at, prefetch_lines, k) : 0;
#define TILE_STEP(kk)                                                                                              \
    do {                                                                                                          \
        const vf b0 = V_LOAD(b);                                                                                  \
        const vf b1 = V_LOAD(b + VL);                                                                             \
        b += b_ks;                                                                                                \
        for (int i = 0; i < MR; i++) {                                                                            \
            const vf ai = V_SET1(rows[i][(kk) * a_cs]);                                                           \
            acc0[i] = V_FMA(ai, b0, acc0[i]);                                                                     \
            acc1[i] = V_FMA(ai, b1, acc1[i]);                                                                     \
        }                                                                                                         \
    } while (0)
    TRICKLE_K_LOOP(TILE_STEP);
#undef TILE_STEP

    // The epilogue indexes rows with a loop the compiler may keep (MR = 12 with GELU is too
    // long to unroll): it then reads this copy, and the accumulators above, indexed only by
    // constants, stay in registers. Indexing them directly kept them in memory, with a store
    // after every FMA (half speed with AVX-512).
    vf done0[MR], done1[MR];
    for (int i = 0; i < MR; i++) {
        done0[i] = acc0[i];
        done1[i] = acc1[i];
    }
    ISA_NAME(finish)(done0, done1, m, n, c, ldc, e);
}

// The last rows of a block, m <= PAIR_ROWS of them, over two panels at once: PAIR_ROWS x 2 NR
// accumulators, where a full tile per panel would spend MR rows of FMAs on m (68 rows of an
// idle block end in 2, 97 in 1; the class row alone, in a last block, is 1). Rows past m
// repeat row m - 1, and `a_rows` picks rows, as in `tile`. `b0` and `b1` are the two panels' slices, each NR floats per
// step of k; `n1` columns of the second are used.
static inline __attribute__((always_inline)) void ISA_NAME(tile_pair)(
    size_t m, size_t n0, size_t n1, size_t k, const float *a, size_t lda, const size_t *a_rows, const float *b0, const float *b1,
    float *c0, float *c1, size_t ldc, const ISA_NAME(Epilogue) *e0, const ISA_NAME(Epilogue) *e1, const float *prefetch,
    size_t prefetch_lines) {
    vf acc[PAIR_ROWS][4];
    const float *rows[PAIR_ROWS];
    for (int i = 0; i < PAIR_ROWS; i++) {
        for (int j = 0; j < 4; j++) acc[i][j] = V_ZERO();
        const size_t row = (size_t)i < m ? (size_t)i : m - 1;
        rows[i] = a + (a_rows ? a_rows[row] : row * lda);
    }
    const float *prefetch_at = prefetch ? prefetch : b0;
    size_t prefetch_left = prefetch ? ISA_NAME(prefetch_excess)(&prefetch_at, prefetch_lines, k) : 0;
#define PAIR_STEP(kk)                                                                                              \
    do {                                                                                                          \
        const vf w0 = V_LOAD(b0), w1 = V_LOAD(b0 + VL), w2 = V_LOAD(b1), w3 = V_LOAD(b1 + VL);                    \
        b0 += NR;                                                                                                 \
        b1 += NR;                                                                                                 \
        for (int i = 0; i < PAIR_ROWS; i++) {                                                                     \
            const vf ai = V_SET1(rows[i][kk]);                                                                    \
            acc[i][0] = V_FMA(ai, w0, acc[i][0]);                                                                 \
            acc[i][1] = V_FMA(ai, w1, acc[i][1]);                                                                 \
            acc[i][2] = V_FMA(ai, w2, acc[i][2]);                                                                 \
            acc[i][3] = V_FMA(ai, w3, acc[i][3]);                                                                 \
        }                                                                                                         \
    } while (0)
    TRICKLE_K_LOOP(PAIR_STEP);
#undef PAIR_STEP

    // Copies indexed by constants, for the epilogue's row loop (see `tile`).
    vf x0[MR], x1[MR], x2[MR], x3[MR];
    for (int i = 0; i < MR; i++) {
        const int r = i < PAIR_ROWS ? i : PAIR_ROWS - 1;
        x0[i] = acc[r][0];
        x1[i] = acc[r][1];
        x2[i] = acc[r][2];
        x3[i] = acc[r][3];
    }
    ISA_NAME(finish)(x0, x1, m, n0, c0, ldc, e0);
    ISA_NAME(finish)(x2, x3, m, n1, c1, ldc, e1);
}
