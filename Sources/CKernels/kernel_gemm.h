// Part of kernels_template.h (included there, once per instruction set): the GEMM over packed
// weights, with its cache blocking, LayerNorm prologue and epilogues.

// ---------------------------------------------------------------------------------------------
// GEMM over packed weights.

// Blocking for the caches (GotoBLAS's scheme, with B packed once at load instead of per call):
// - K is cut into blocks of at most KC, a panel's slice being KC x NR floats (96 KB: with AVX2,
//   KC = 1536, so neither DeiT-S's K = 384 or 1536 nor DeiT-B's 768 is cut). The slice does
//   not stay in L1: the microkernel streams it from L2 while the next one is prefetched a
//   line at a time. Each cut costs a round trip of the partial sums through C and a tile's
//   set-up and epilogue per block: 24 KB slices (which kept a slice in L1 and cut DeiT-B's
//   K = 768 in two) ran DeiT-B's products at 84-87% of a core's peak, 96 KB slices at 90-93%,
//   and DeiT-S's fc2 (K = 1536, cut in four) at 84%, then 93% (idlevit-kernel-bench, Zen 2);
// - rows are cut into blocks whose KC-wide slice of A (up to 320 KB, of Zen 2's 512 KB L2;
//   AVX-512 Xeons have 1-2 MB) stays in L2 while every panel of the call streams past it.
//   320 KB keeps one image's 197 rows of DeiT-S at K = 384, or an idle block's 138, in one
//   block, so each panel slice is read once per call (192 KB cut them in two: IdleViT DeiT-S
//   and DeiT-B at batch 1 ran 2-3% slower, dense unchanged, in alternating runs).
// Blocks are balanced (300 rows at K = 384 make 150 + 150, not 210 + 90). How K is cut depends only on K,
// never on the rows or panels a thread was given, so results do not depend on the partition.
#ifndef GEMM_PANEL_SLICE_BYTES
#define GEMM_PANEL_SLICE_BYTES (96u * 1024u)
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
    // Four sums side by side: with one, each add waits for the last (48 dependent steps of 3-5
    // cycles for a 384-float row). DeiT-S's idle blocks' LayerNorm: 27 -> 22 us a call.
    vf acc[4] = {V_ZERO(), V_ZERO(), V_ZERO(), V_ZERO()};
    size_t i = 0;
    for (; i + 4 * VL <= count; i += 4 * VL)
        for (int j = 0; j < 4; j++) acc[j] = V_ADD(acc[j], V_LOAD(x + i + j * VL));
    for (; i + VL <= count; i += VL) acc[0] = V_ADD(acc[0], V_LOAD(x + i));
    if (i < count) acc[1] = V_ADD(acc[1], ISA_NAME(v_load_n)(x + i, count - i));
    const float mean = ISA_NAME(v_sum)(V_ADD(V_ADD(acc[0], acc[1]), V_ADD(acc[2], acc[3]))) / (float)count;
    const vf mean_v = V_SET1(mean);
    vf squares[4] = {V_ZERO(), V_ZERO(), V_ZERO(), V_ZERO()};
    for (i = 0; i + 4 * VL <= count; i += 4 * VL) {
        for (int j = 0; j < 4; j++) {
            const vf d = V_SUB(V_LOAD(x + i + j * VL), mean_v);
            squares[j] = V_FMA(d, d, squares[j]);
        }
    }
    for (; i + VL <= count; i += VL) {
        const vf d = V_SUB(V_LOAD(x + i), mean_v);
        squares[0] = V_FMA(d, d, squares[0]);
    }
    float square_sum = ISA_NAME(v_sum)(V_ADD(V_ADD(squares[0], squares[1]), V_ADD(squares[2], squares[3])));
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

// The epilogue of the tile whose first output element is `out` (residual row `residual`, NULL
// without one; its rows at `residual_rows` when picked) in panel column `col`, for the K
// block that is the `first` and/or `last`.
static inline ISA_NAME(Epilogue) ISA_NAME(gemm_epilogue)(const IdvGemm *g, ISA_NAME(SplitForm) form, int first, int last,
                                                        size_t col, float *out, const float *residual,
                                                        const size_t *residual_rows) {
    ISA_NAME(Epilogue) e = {.ldp = g->ldc, .ldr = g->ldr};
    if (form == ISA_NAME(SPLIT_SCALED) && !first) {
        // Later K blocks add s acc_j onto C.
        e.scale = g->scale ? g->scale + col : NULL;
        e.residual = out;
        e.ldr = g->ldc;
    } else if (!(form == ISA_NAME(SPLIT_RAW) && !last)) {
        e.bias = g->bias ? g->bias + col : NULL;
        e.scale = g->scale ? g->scale + col : NULL;
        e.gelu = g->gelu;
        e.residual = residual;
        e.residual_rows = residual_rows;
    }
    if (form == ISA_NAME(SPLIT_RAW) && !first) e.partial = out;
    return e;
}

// The tile's output rows are read (partial sums, or the residual) or written only after the
// k loop: ask for them now.
static inline void ISA_NAME(prefetch_outputs)(const ISA_NAME(Epilogue) *e, float *out, size_t ldc, size_t m) {
    for (size_t i = 0; i < m; i++) {
        const float *early = e->partial ? e->partial + i * e->ldp : e->residual ? ISA_NAME(residual_row)(e, i) : NULL;
        if (early) {
            __builtin_prefetch(early, 0, 3);
            __builtin_prefetch(early + NR - 1, 0, 3);
        }
        __builtin_prefetch(out + i * ldc, 1, 3);
        __builtin_prefetch(out + i * ldc + NR - 1, 1, 3);
    }
}

// Rows picked by a fused gather (`IdvRowIndex`): the element offsets from the matrix's start
// of rows [first, first + count), rows `stride` floats apart. One division for the run: the
// image and position then advance row by row.
#define GEMM_PICKED_BLOCK_ROWS 240u
static void ISA_NAME(picked_offsets)(const IdvRowIndex *pick, size_t first, size_t count, size_t stride, size_t *offsets) {
    size_t image = first / pick->per_image, position = first % pick->per_image;
    for (size_t i = 0; i < count; i++) {
        offsets[i] = (image * pick->image_rows + (size_t)pick->index[first + i]) * stride;
        if (++position == pick->per_image) {
            position = 0;
            image++;
        }
    }
}

static void ISA_NAME(gemm)(const IdvGemm *g, size_t row_begin, size_t row_end, size_t panel_begin, size_t panel_end,
                           float *workspace) {
    const size_t k = g->k;
    ISA_NAME(SplitForm) form = ISA_NAME(SPLIT_RAW);
    if (g->residual && !g->gelu) form = ISA_NAME(SPLIT_SCALED);
    if (g->residual && g->gelu && g->residual == g->c) form = ISA_NAME(SPLIT_NONE);
    const size_t kc = form == ISA_NAME(SPLIT_NONE) ? k : ISA_NAME(gemm_k_block)(k);
    // Picked rows' offsets are worked out once per row block, on the stack: such blocks are
    // capped at GEMM_PICKED_BLOCK_ROWS (a multiple of every MR), which changes no sum.
    const int pick_a = g->a_rows.index != NULL && g->a_rows.per_image > 0;
    const int pick_residual = g->residual != NULL && g->residual_rows.index != NULL && g->residual_rows.per_image > 0;
    size_t a_offsets[GEMM_PICKED_BLOCK_ROWS], residual_offsets[GEMM_PICKED_BLOCK_ROWS];
    size_t block = ISA_NAME(gemm_row_block)(row_end - row_begin, kc);
    if ((pick_a || pick_residual) && block > GEMM_PICKED_BLOCK_ROWS) block = GEMM_PICKED_BLOCK_ROWS;
    for (size_t m0 = row_begin; m0 < row_end; m0 += block) {
        const size_t rows = MIN_SIZE(block, row_end - m0);
        // With picked rows, `a` (and `residual`) stay at the matrix's start and each tile
        // passes its rows' offsets.
        const float *a = pick_a ? g->a : g->a + m0 * g->lda;
        const size_t *a_rows = NULL;
        if (pick_a) {
            ISA_NAME(picked_offsets)(&g->a_rows, m0, rows, g->lda, a_offsets);
            a_rows = a_offsets;
        }
        size_t lda = g->lda;
        if (g->ln_weight) {
            for (size_t r = 0; r < rows; r++)
                ISA_NAME(layer_norm_row)(a_rows ? a + a_rows[r] : a + r * lda, k, g->ln_weight, g->ln_bias, g->ln_eps, workspace + r * k);
            a = workspace;
            lda = k;
            a_rows = NULL;
        }
        float *c = g->c + m0 * g->ldc;
        const float *residual = g->residual ? (pick_residual ? g->residual : g->residual + m0 * g->ldr) : NULL;
        const size_t *residual_rows = NULL;
        if (pick_residual) {
            ISA_NAME(picked_offsets)(&g->residual_rows, m0, rows, g->ldr, residual_offsets);
            residual_rows = residual_offsets;
        }
        // Full tiles go panel by panel; a remainder of at most PAIR_ROWS rows goes two panels
        // at a time (`tile_pair`), after the second of them. An odd panel out at the end of
        // the range sweeps its remainder with its other tiles.
        const size_t rest = rows % MR;
        const int paired = rest > 0 && rest <= PAIR_ROWS;
        for (size_t k0 = 0; k0 < k; k0 += kc) {
            const size_t depth = MIN_SIZE(kc, k - k0);
            const int first = k0 == 0, last = k0 + depth == k;
            for (size_t p = panel_begin; p < panel_end; p++) {
                const size_t col = p * NR;
                const size_t n = MIN_SIZE(NR, g->n - col);
                const float *slice = g->b + p * k * NR + k0 * NR;
                // The next slice this walk reads: the next panel's, or after the last panel
                // the first panel's slice of the next K block. The tiles of this panel ask for
                // it into L2 a share each (the remainder pair, when there is no full tile).
                const float *next = NULL;
                size_t next_lines = 0;
                if (p + 1 < panel_end) {
                    next = slice + k * NR;
                    next_lines = depth * NR / 16;
                } else if (k0 + depth < k) {
                    next = g->b + panel_begin * k * NR + (k0 + depth) * NR;
                    next_lines = MIN_SIZE(kc, k - k0 - depth) * NR / 16;
                }
                const size_t pair_index = p - panel_begin;
                const int pairs_rest = paired && !(pair_index % 2 == 0 && p + 1 == panel_end);
                const size_t swept = pairs_rest ? rows - rest : rows;
                const size_t tiles = (swept + MR - 1) / MR;
                for (size_t t = 0; t < tiles; t++) {
                    const size_t r = t * MR;
                    const size_t m = MIN_SIZE(MR, swept - r);
                    float *out = c + r * g->ldc + col;
                    const ISA_NAME(Epilogue) e = ISA_NAME(gemm_epilogue)(
                        g, form, first, last, col, out, residual ? (residual_rows ? residual : residual + r * g->ldr) + col : NULL,
                        residual_rows ? residual_rows + r : NULL);
                    ISA_NAME(prefetch_outputs)(&e, out, g->ldc, m);
                    const size_t from = t * next_lines / tiles, to = (t + 1) * next_lines / tiles;
                    ISA_NAME(tile)(m, n, depth, (a_rows ? a : a + r * lda) + k0, lda, 1, a_rows ? a_rows + r : NULL, slice, NR, out,
                                   g->ldc, &e, next ? next + from * 16 : NULL, to - from);
                }
                if (!pairs_rest) continue;
                const size_t r = swept;
                const float *pair_next = tiles == 0 ? next : NULL;
                if (pair_index % 2 == 0) {
                    if (tiles == 0 && next) {
                        // No tile runs for this panel (the block is a few rows): the pair after
                        // the next panel would find the next slice cold.
                        for (size_t l = 0; l < next_lines; l++) __builtin_prefetch(next + l * 16, 0, 2);
                    }
                    continue;
                }
                const size_t col0 = col - NR;
                float *out0 = c + r * g->ldc + col0, *out1 = c + r * g->ldc + col;
                const float *res = residual ? (residual_rows ? residual : residual + r * g->ldr) : NULL;
                const size_t *res_rows = residual_rows ? residual_rows + r : NULL;
                const ISA_NAME(Epilogue) e0 =
                    ISA_NAME(gemm_epilogue)(g, form, first, last, col0, out0, res ? res + col0 : NULL, res_rows);
                const ISA_NAME(Epilogue) e1 = ISA_NAME(gemm_epilogue)(g, form, first, last, col, out1, res ? res + col : NULL, res_rows);
                ISA_NAME(prefetch_outputs)(&e0, out0, g->ldc, rest);
                ISA_NAME(prefetch_outputs)(&e1, out1, g->ldc, rest);
                ISA_NAME(tile_pair)(rest, NR, n, depth, (a_rows ? a : a + r * lda) + k0, lda, a_rows ? a_rows + r : NULL,
                                    slice - k * NR, slice, out0, out1, g->ldc, &e0, &e1, pair_next, pair_next ? next_lines : 0);
            }
        }
    }
}
