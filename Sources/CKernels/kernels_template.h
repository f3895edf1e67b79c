// The kernels, written once over a small vector vocabulary and compiled three times:
// kernels_avx512.c, kernels_avx2.c and kernels_portable.c define the vocabulary and include
// this file. Only the AVX2 and portable instantiations can be tested on an AVX2 machine; the
// AVX-512 one differs from them in the vocabulary alone, which keeps its untested surface to
// a page of macro definitions.
//
// The including file defines:
//   vf             the vector type, VL lanes of float
//   MR             microkernel tile rows (NR = 2 VL columns)
//   PAIR_ROWS      rows of the remainder tile that spans two panels (4 PAIR_ROWS accumulators)
//   TILE_STEPS_PRAGMA  how the microkernels' inner loop of PREFETCH_EVERY k steps is unrolled
//   ISA_NAME(x)    x suffixed with the instruction set; ISA_ID its IdvISA
//   PEAK_CHAINS    independent FMA chains that fill the FMA pipes (latency x pipes, or more)
//   V_ZERO() V_SET1(x) V_LOAD(p) V_STORE(p, v)            unaligned loads and stores
//   V_FMA(a, b, c) = a * b + c, V_ADD V_SUB V_MUL V_DIV
//   V_MAX(a, b) V_MIN(a, b): the second operand when unordered, so `V_MAX(limit, x)` keeps a NaN x
//   V_POW2N(t)     2^n as floats from t = n + 127 + 1.5 * 2^23, -126 <= n <= 0: t's bits shifted
//                  left by 23 (127 + n, its low 9 bits, lands in the exponent field)
// and may define:
//   TRANSPOSE_8X8(from, from_stride, to, to_stride)  an 8 x 8 block transposed in registers
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define NR (2 * VL)

static inline size_t ISA_NAME(min_size)(size_t a, size_t b) { return a < b ? a : b; }
#define MIN_SIZE ISA_NAME(min_size)

#include "kernel_math.h"
#include "kernel_tiles.h"
#include "kernel_gemm.h"
#include "kernel_attention.h"
#include "kernel_selection.h"

// ---------------------------------------------------------------------------------------------
// Elementwise GELU, LayerNorm and attention's exponential (for its accuracy test), the FMA peak
// loop and the microkernel's ceiling loop.

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

static void ISA_NAME(exp2_nonpositive)(const float *x, float *y, size_t count) {
    for (size_t i = 0; i < count; i += VL) {
        const size_t n = MIN_SIZE(VL, count - i);
        ISA_NAME(v_store_n)(y + i, ISA_NAME(v_exp2_nonpositive)(ISA_NAME(v_load_n)(x + i, n)), n);
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

// The microkernel's own ceiling: a tile's k steps over one 16 KB panel slice (k = 256 with
// AVX2) and MR rows of A, both filled once and then only read, so every load hits L1.
#define TILE_LOOP_K (4096 / NR)

static float ISA_NAME(tile_loop)(size_t iterations) {
    float a[MR * TILE_LOOP_K], b[TILE_LOOP_K * NR], c[MR * NR];
    for (size_t i = 0; i < MR * TILE_LOOP_K; i++) a[i] = 0.001f * (float)(i % 7);
    for (size_t i = 0; i < TILE_LOOP_K * NR; i++) b[i] = 0.001f * (float)(i % 5);
    float total = 0;
    for (size_t it = 0; it < iterations; it++) {
        ISA_NAME(tile)(MR, NR, TILE_LOOP_K, a, TILE_LOOP_K, 1, NULL, b, NR, c, NR, NULL, NULL, 0);
        // Reading a result each time keeps the calls from being merged or dropped.
        total += c[it % (MR * NR)];
    }
    return total;
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
    .exp2_nonpositive = ISA_NAME(exp2_nonpositive),
    .layer_norm = ISA_NAME(layer_norm),
    .fma_loop = ISA_NAME(fma_loop),
    .dot_ff = ISA_NAME(dot_ff),
    .dot4_ff = ISA_NAME(dot4_ff),
    .dot_df = ISA_NAME(dot_df),
    .axpy_rows_df = ISA_NAME(axpy_rows_df),
    .peak_flops_per_iteration = 2 * VL * PEAK_CHAINS,
    .tile_loop = ISA_NAME(tile_loop),
    .tile_flops_per_iteration = 2 * MR * NR * TILE_LOOP_K,
};

