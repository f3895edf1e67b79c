// The kernels, written once over a small vector vocabulary and compiled three times:
// kernels_avx512.c, kernels_avx2.c and kernels_portable.c define the vocabulary and include
// this file. Only the AVX2 and portable instantiations can be tested on an AVX2 machine; the
// AVX-512 one differs from them in the vocabulary alone, which keeps its untested surface to
// a page of macro definitions.
//
// The including file defines:
//   vf             the vector type, VL lanes of float
//   MR             microkernel tile rows (NR = 2 VL columns)
//   ISA_NAME(x)    x suffixed with the instruction set; ISA_ID its IdvISA
//   PEAK_CHAINS    independent FMA chains that fill the FMA pipes (latency x pipes, or more)
//   V_ZERO() V_SET1(x) V_LOAD(p) V_STORE(p, v)            unaligned loads and stores
//   V_FMA(a, b, c) = a * b + c, V_ADD V_SUB V_MUL V_DIV
//   V_MAX(a, b) V_MIN(a, b): the second operand when unordered, so `V_MAX(limit, x)` keeps a NaN x
//   V_POW2N(t)     2^n as floats from t = n + 1.5 * 2^23 (n an integer in the low mantissa bits)
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define NR (2 * VL)

static inline size_t ISA_NAME(min_size)(size_t a, size_t b) { return a < b ? a : b; }
#define MIN_SIZE ISA_NAME(min_size)

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
    /// One multiplier per tile row (attention's 1 / softmax sum).
    const float *row_scale;
    int gelu;
} ISA_NAME(Epilogue);

// C[i, j] = finish(sum_kk A[i, kk] B[kk, j]) for i < m <= MR, j < n <= NR, where A[i, kk] is
// a[i * a_rs + kk * a_cs] and B[kk, j] is b[kk * b_ks + j]; b must have NR readable floats per
// kk. Rows of A past m repeat row m - 1 (read, never stored), so no row past the operand is
// touched. Always inlined: the strides are constants at most call sites (a_cs = 1 for
// row-major A), which the compiler folds into the addressing.
//
// `prefetch`: `prefetch_lines` cache lines from there are asked into L2 while the tile runs,
// a few every PREFETCH_EVERY steps of k (NULL: none).
#define PREFETCH_EVERY 4
static inline __attribute__((always_inline)) void ISA_NAME(tile)(
    size_t m, size_t n, size_t k, const float *a, size_t a_rs, size_t a_cs, const float *b, size_t b_ks, float *c,
    size_t ldc, const ISA_NAME(Epilogue) *e, const float *prefetch, size_t prefetch_lines) {
    vf acc0[MR], acc1[MR];
    const float *rows[MR];
    for (int i = 0; i < MR; i++) {
        acc0[i] = V_ZERO();
        acc1[i] = V_ZERO();
        rows[i] = a + ((size_t)i < m ? (size_t)i : m - 1) * a_rs;
    }
    // A steady trickle of prefetches, one line every PREFETCH_EVERY steps of k: a burst at the
    // tile's start would take the miss buffers that the A rows' loads from L2 need. Lines the
    // trickle cannot carry (more lines than steps) go first. Past the last line the address
    // stops moving (the same line again costs nothing).
    const float *prefetch_at = prefetch ? prefetch : b;
    size_t prefetch_left = prefetch ? prefetch_lines : 0;
    const size_t steps = k / PREFETCH_EVERY;
    while (prefetch_left > steps) {
        __builtin_prefetch(prefetch_at, 0, 2);
        prefetch_at += 16;
        prefetch_left--;
    }
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
    size_t kk = 0;
    for (; kk + PREFETCH_EVERY <= k; kk += PREFETCH_EVERY) {
        __builtin_prefetch(prefetch_at, 0, 2);
        const size_t more = prefetch_left ? 1 : 0;
        prefetch_at += 16 * more;
        prefetch_left -= more;
#pragma clang loop unroll(full)
        for (size_t u = 0; u < PREFETCH_EVERY; u++) TILE_STEP(kk + u);
    }
    for (; kk < k; kk++) TILE_STEP(kk);
#undef TILE_STEP

    // The epilogue below indexes rows with a loop the compiler may keep (MR = 12 with GELU is
    // too long to unroll): it then reads this copy, and the accumulators above, indexed only by
    // constants, stay in registers. Indexing them directly kept them in memory, with a store
    // after every FMA (half speed with AVX-512).
    vf done0[MR], done1[MR];
    for (int i = 0; i < MR; i++) {
        done0[i] = acc0[i];
        done1[i] = acc1[i];
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
        vf x0 = done0[i], x1 = done1[i];
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
                const float *r = e->residual + (size_t)i * e->ldr;
                x0 = V_ADD(x0, ISA_NAME(v_load_n)(r, n0));
                x1 = V_ADD(x1, ISA_NAME(v_load_n)(r + VL, n1));
            }
        }
        float *out = c + (size_t)i * ldc;
        ISA_NAME(v_store_n)(out, x0, n0);
        ISA_NAME(v_store_n)(out + VL, x1, n1);
    }
}

// ---------------------------------------------------------------------------------------------
// GEMM over packed weights.

// Blocking for the caches (GotoBLAS's scheme, with B packed once at load instead of per call):
// - K is cut into blocks of at most KC so that a panel's slice, KC x NR floats, stays in L1
//   (24 KB of a 32 KB L1: with AVX2, KC = 384, so DeiT-S's K = 384 is one block; 16 KB
//   slices, which split it, measured 3-10% slower) while the microkernel sweeps a block of
//   rows past it;
// - rows are cut into blocks whose KC-wide slice of A (up to 320 KB, of Zen 2's 512 KB L2;
//   AVX-512 Xeons have 1-2 MB) stays in L2 while every panel of the call streams past it.
//   320 KB keeps one image's 197 rows of DeiT-S, or an idle block's 138, in one block, so each
//   panel slice is read once per call (192 KB cut them in two: IdleViT DeiT-S and DeiT-B at
//   batch 1 ran 2-3% slower, dense unchanged, in alternating runs).
// Blocks are balanced (300 rows at K = 384 make 150 + 150, not 210 + 90). How K is cut depends only on K,
// never on the rows or panels a thread was given, so results do not depend on the partition.
#ifndef GEMM_PANEL_SLICE_BYTES
#define GEMM_PANEL_SLICE_BYTES (24u * 1024u)
#endif
#ifndef GEMM_A_BLOCK_BYTES
#define GEMM_A_BLOCK_BYTES (320u * 1024u)
#endif

static size_t ISA_NAME(gemm_k_block)(size_t k) {
    const size_t limit = GEMM_PANEL_SLICE_BYTES / (NR * sizeof(float));
    const size_t blocks = (k + limit - 1) / limit;
    return blocks <= 1 ? k : (k + blocks - 1) / blocks;
}

static size_t ISA_NAME(gemm_row_block)(size_t rows, size_t kc) {
    size_t limit = GEMM_A_BLOCK_BYTES / sizeof(float) / (kc ? kc : 1) / MR * MR;
    if (limit < MR) limit = MR;
    const size_t blocks = (rows + limit - 1) / limit;
    const size_t balanced = blocks <= 1 ? rows : (rows + blocks - 1) / blocks;
    return (balanced + MR - 1) / MR * MR;
}

static size_t ISA_NAME(gemm_workspace_floats)(size_t rows, size_t k) {
    // One block of LayerNorm'd rows of A, all K columns (the row statistics need them all).
    return ISA_NAME(gemm_row_block)(rows, ISA_NAME(gemm_k_block)(k)) * k;
}


// LayerNorm of one row, as PyTorch computes it: mean, then the mean of squared deviations.
static void ISA_NAME(layer_norm_row)(const float *x, size_t count, const float *weight, const float *bias, float eps,
                                     float *y) {
    vf acc = V_ZERO();
    size_t i = 0;
    for (; i + VL <= count; i += VL) acc = V_ADD(acc, V_LOAD(x + i));
    if (i < count) acc = V_ADD(acc, ISA_NAME(v_load_n)(x + i, count - i));
    const float mean = ISA_NAME(v_sum)(acc) / (float)count;
    const vf mean_v = V_SET1(mean);
    vf squares = V_ZERO();
    for (i = 0; i + VL <= count; i += VL) {
        const vf d = V_SUB(V_LOAD(x + i), mean_v);
        squares = V_FMA(d, d, squares);
    }
    float square_sum = ISA_NAME(v_sum)(squares);
    for (; i < count; i++) square_sum += (x[i] - mean) * (x[i] - mean);
    const vf inverse = V_SET1(1.0f / sqrtf(square_sum / (float)count + eps));
    for (i = 0; i < count; i += VL) {
        const size_t n = MIN_SIZE(VL, count - i);
        const vf d = V_MUL(V_SUB(ISA_NAME(v_load_n)(x + i, n), mean_v), inverse);
        ISA_NAME(v_store_n)(y + i, V_FMA(d, ISA_NAME(v_load_n)(weight + i, n), ISA_NAME(v_load_n)(bias + i, n)), n);
    }
}

// How the epilogue is spread over K blocks when K is split. With one block, everything
// happens in registers at once.
typedef enum {
    // C holds raw partial sums until the last block, which adds them and finishes.
    ISA_NAME(SPLIT_RAW),
    // With a residual and no GELU: r + s (sum_j acc_j + b) = [r + s (acc_0 + b)] + s acc_1 + ...,
    // so the first block applies the whole epilogue and later ones add s acc_j onto C. This
    // is the form that lets the residual be C itself (fc2 and proj write over the stream).
    ISA_NAME(SPLIT_SCALED),
    // GELU with a residual that is C itself: no place for partial sums, so K is not split.
    ISA_NAME(SPLIT_NONE),
} ISA_NAME(SplitForm);

static void ISA_NAME(gemm)(const IdvGemm *g, size_t row_begin, size_t row_end, size_t panel_begin, size_t panel_end,
                           float *workspace) {
    const size_t k = g->k;
    ISA_NAME(SplitForm) form = ISA_NAME(SPLIT_RAW);
    if (g->residual && !g->gelu) form = ISA_NAME(SPLIT_SCALED);
    if (g->residual && g->gelu && g->residual == g->c) form = ISA_NAME(SPLIT_NONE);
    const size_t kc = form == ISA_NAME(SPLIT_NONE) ? k : ISA_NAME(gemm_k_block)(k);
    const size_t block = ISA_NAME(gemm_row_block)(row_end - row_begin, kc);
    for (size_t m0 = row_begin; m0 < row_end; m0 += block) {
        const size_t rows = MIN_SIZE(block, row_end - m0);
        const float *a = g->a + m0 * g->lda;
        size_t lda = g->lda;
        if (g->ln_weight) {
            for (size_t r = 0; r < rows; r++)
                ISA_NAME(layer_norm_row)(a + r * lda, k, g->ln_weight, g->ln_bias, g->ln_eps, workspace + r * k);
            a = workspace;
            lda = k;
        }
        float *c = g->c + m0 * g->ldc;
        const float *residual = g->residual ? g->residual + m0 * g->ldr : NULL;
        for (size_t k0 = 0; k0 < k; k0 += kc) {
            const size_t depth = MIN_SIZE(kc, k - k0);
            const int first = k0 == 0, last = k0 + depth == k;
            for (size_t p = panel_begin; p < panel_end; p++) {
                const size_t col = p * NR;
                const size_t n = MIN_SIZE(NR, g->n - col);
                const float *slice = g->b + p * k * NR + k0 * NR;
                ISA_NAME(Epilogue) e = {.ldp = g->ldc, .ldr = g->ldr};
                int raw = 0, onto_c = 0;
                if (form == ISA_NAME(SPLIT_SCALED) && !first) {
                    e.scale = g->scale ? g->scale + col : NULL;
                    onto_c = 1;
                } else if (form == ISA_NAME(SPLIT_RAW) && !last) {
                    raw = 1;
                } else {
                    e.bias = g->bias ? g->bias + col : NULL;
                    e.scale = g->scale ? g->scale + col : NULL;
                    e.gelu = g->gelu;
                }
                for (size_t r = 0; r < rows; r += MR) {
                    float *out = c + r * g->ldc + col;
                    if (onto_c) {
                        e.residual = out;
                        e.ldr = g->ldc;
                    } else if (!raw && residual) {
                        e.residual = residual + r * g->ldr + col;
                    }
                    if (form == ISA_NAME(SPLIT_RAW) && !first) e.partial = out;
                    // The tile's output rows are read (partial sums, or the residual) or
                    // written only after the k loop: ask for them now. Then a share of the next
                    // panel's slice into L2, so the next sweep does not start on misses.
                    const size_t m = MIN_SIZE(MR, rows - r);
                    const float *early = e.partial ? out : e.residual;
                    const size_t early_stride = e.partial ? g->ldc : e.ldr;
                    for (size_t i = 0; i < m; i++) {
                        if (early) {
                            __builtin_prefetch(early + i * early_stride, 0, 3);
                            __builtin_prefetch(early + i * early_stride + NR - 1, 0, 3);
                        }
                        __builtin_prefetch(out + i * g->ldc, 1, 3);
                        __builtin_prefetch(out + i * g->ldc + NR - 1, 1, 3);
                    }
                    // The next slice this walk reads: the next panel's, or after the last
                    // panel the first panel's slice of the next K block.
                    const float *next = NULL;
                    size_t next_depth = depth;
                    if (p + 1 < panel_end) {
                        next = slice + k * NR;
                    } else if (k0 + depth < k) {
                        next = g->b + panel_begin * k * NR + (k0 + depth) * NR;
                        next_depth = MIN_SIZE(kc, k - k0 - depth);
                    }
                    const float *prefetch = NULL;
                    size_t prefetch_lines = 0;
                    if (next) {
                        const size_t tiles = (rows + MR - 1) / MR, t = r / MR, lines = next_depth * NR / 16;
                        prefetch = next + t * lines / tiles * 16;
                        prefetch_lines = (t + 1) * lines / tiles - t * lines / tiles;
                    }
                    ISA_NAME(tile)(m, n, depth, a + r * lda + k0, lda, 1, slice, NR, out, g->ldc, &e, prefetch, prefetch_lines);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fused attention for one head and a range of queries, NR queries at a time:
//   S^T = K Q^T    keys down, the NR queries across: the microkernel reads K's rows where
//                  they are, and only the NR x d query tile is transposed;
//   softmax down each column, vectorised across the queries (no horizontal reductions);
//   O = P V        P read from S^T with strides (rows of the tile are its columns), V's rows
//                  where they are, the 1 / row sum applied in the epilogue.
// The scores never exist beyond tokens x NR floats (6-12 KB at 197 tokens: L1).

static size_t ISA_NAME(round_up16)(size_t x) { return (x + 15) / 16 * 16; }

static size_t ISA_NAME(attention_workspace_floats)(size_t tokens, size_t head_dim) {
    const size_t padded = (head_dim + NR - 1) / NR * NR;
    return ISA_NAME(round_up16)(head_dim * NR) + ISA_NAME(round_up16)(tokens * NR) + ISA_NAME(round_up16)(NR) +
           ISA_NAME(round_up16)(tokens * head_dim) + tokens * padded;
}

static void ISA_NAME(attention)(const IdvAttentionHead *h, size_t query_begin, size_t query_end, float *workspace) {
    const size_t tokens = h->tokens, d = h->head_dim, stride = h->row_stride;
    float *qt = workspace;                                         // [d][NR]: the query tile, transposed
    float *scores = qt + ISA_NAME(round_up16)(d * NR);             // [tokens][NR]: keys down, queries across
    float *inverse = scores + ISA_NAME(round_up16)(tokens * NR);   // [NR]: 1 / softmax sums
    // The head's keys and values, copied together: in place they are d floats out of every
    // 3C-float row (at batch 8 DeiT-S's qkv is 7 MB, past L2), a strided walk of hundreds of
    // pages for every query tile; the copy is one pass, and V's rows are padded to whole
    // panels of NR columns, which the microkernel reads.
    const size_t padded = (d + NR - 1) / NR * NR;
    float *k = inverse + ISA_NAME(round_up16)(NR);   // [tokens][d]
    float *v = k + ISA_NAME(round_up16)(tokens * d); // [tokens][padded]
    for (size_t t = 0; t < tokens; t++) {
        memcpy(k + t * d, h->k + t * stride, d * sizeof(float));
        memcpy(v + t * padded, h->v + t * stride, d * sizeof(float));
        for (size_t j = d; j < padded; j++) v[t * padded + j] = 0;
    }
    const size_t v_stride = padded;
    const vf scale = V_SET1(h->scale);
    for (size_t q0 = query_begin; q0 < query_end; q0 += NR) {
        const size_t queries = MIN_SIZE(NR, query_end - q0);
        for (size_t j = 0; j < NR; j++) {
            if (j < queries) {
                const float *q = h->q + (q0 + j) * stride;
                for (size_t kk = 0; kk < d; kk++) qt[kk * NR + j] = q[kk];
            } else {
                for (size_t kk = 0; kk < d; kk++) qt[kk * NR + j] = 0;
            }
        }
        for (size_t key = 0; key < tokens; key += MR)
            ISA_NAME(tile)(MIN_SIZE(MR, tokens - key), NR, d, k + key * d, d, 1, qt, NR, scores + key * NR, NR, NULL, NULL, 0);

        // Softmax of scale * s down each column: subtract the column maximum first, so that
        // every exponent is <= 0.
        vf max0 = V_LOAD(scores), max1 = V_LOAD(scores + VL);
        for (size_t key = 1; key < tokens; key++) {
            max0 = V_MAX(max0, V_LOAD(scores + key * NR));
            max1 = V_MAX(max1, V_LOAD(scores + key * NR + VL));
        }
        vf sum0 = V_ZERO(), sum1 = V_ZERO();
        for (size_t key = 0; key < tokens; key++) {
            float *row = scores + key * NR;
            const vf e0 = ISA_NAME(v_exp_nonpositive)(V_MUL(V_SUB(V_LOAD(row), max0), scale));
            const vf e1 = ISA_NAME(v_exp_nonpositive)(V_MUL(V_SUB(V_LOAD(row + VL), max1), scale));
            V_STORE(row, e0);
            V_STORE(row + VL, e1);
            sum0 = V_ADD(sum0, e0);
            sum1 = V_ADD(sum1, e1);
        }
        V_STORE(inverse, V_DIV(V_SET1(1.0f), sum0));
        V_STORE(inverse + VL, V_DIV(V_SET1(1.0f), sum1));

        for (size_t i = 0; i < queries; i += MR) {
            const ISA_NAME(Epilogue) e = {.row_scale = inverse + i};
            float *out = h->out + (q0 + i) * h->out_stride;
            for (size_t col = 0; col < d; col += NR)
                ISA_NAME(tile)(MIN_SIZE(MR, queries - i), MIN_SIZE(NR, d - col), tokens, scores + i, 1, NR, v + col,
                               v_stride, out + col, h->out_stride, &e, NULL, 0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Elementwise GELU and the FMA peak loop.

static void ISA_NAME(gelu)(const float *x, float *y, size_t count) {
    size_t i = 0;
    for (; i + 2 * VL <= count; i += 2 * VL) {
        const vf a = ISA_NAME(v_gelu)(V_LOAD(x + i));
        const vf b = ISA_NAME(v_gelu)(V_LOAD(x + i + VL));
        V_STORE(y + i, a);
        V_STORE(y + i + VL, b);
    }
    for (; i < count; i += VL) {
        const size_t n = MIN_SIZE(VL, count - i);
        ISA_NAME(v_store_n)(y + i, ISA_NAME(v_gelu)(ISA_NAME(v_load_n)(x + i, n)), n);
    }
}

static void ISA_NAME(layer_norm)(const float *x, size_t rows, size_t count, size_t stride, const float *weight,
                                 const float *bias, float eps, float *y) {
    for (size_t r = 0; r < rows; r++) ISA_NAME(layer_norm_row)(x + r * stride, count, weight, bias, eps, y + r * stride);
}

static float ISA_NAME(fma_loop)(size_t iterations) {
    vf acc[PEAK_CHAINS];
    for (int j = 0; j < PEAK_CHAINS; j++) acc[j] = V_SET1(0.001f * (float)j);
    const vf x = V_SET1(0.999f), y = V_SET1(0.001f);
    for (size_t it = 0; it < iterations; it++) {
        for (int j = 0; j < PEAK_CHAINS; j++) acc[j] = V_FMA(acc[j], x, y);
    }
    vf total = V_ZERO();
    for (int j = 0; j < PEAK_CHAINS; j++) total = V_ADD(total, acc[j]);
    return ISA_NAME(v_sum)(total);
}

static const IdvKernels ISA_NAME(table) = {
    .isa = ISA_ID,
    .mr = MR,
    .nr = NR,
    .gemm = ISA_NAME(gemm),
    .gemm_workspace_floats = ISA_NAME(gemm_workspace_floats),
    .attention = ISA_NAME(attention),
    .attention_workspace_floats = ISA_NAME(attention_workspace_floats),
    .gelu = ISA_NAME(gelu),
    .layer_norm = ISA_NAME(layer_norm),
    .fma_loop = ISA_NAME(fma_loop),
    .peak_flops_per_iteration = 2 * VL * PEAK_CHAINS,
};
