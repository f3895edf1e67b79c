// The kernels for AVX2 + FMA (Haswell and later, Zen 1 and later): 16 ymm registers, so a
// 6 x 16 tile (12 accumulators, 2 B vectors, 1 broadcast).
#include "CKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)

typedef __m256 vf;
#define VL 8
#define MR 6
// 2 x 32 remainder tiles: 8 accumulators, 4 B vectors and the broadcast (3 rows would need 17
// of the 16 registers and spill).
#define PAIR_ROWS 2
// Unrolled: the loop's own increments and branch then cost a fraction of a cycle per step of
// 2 MR FMAs (+2-5% on DeiT shapes); the 6 row pointers and the prefetch stay in registers.
#define TILE_STEPS_PRAGMA _Pragma("clang loop unroll(full)")
#define ISA_NAME(x) x##_avx2
#define ISA_ID IDV_ISA_AVX2
// FMA latency 4-5 cycles, 2 pipes: 10 chains keep both busy; 12 leaves margin.
#define PEAK_CHAINS 12
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_SUB(a, b) _mm256_sub_ps(a, b)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_DIV(a, b) _mm256_div_ps(a, b)
#define V_MAX(a, b) _mm256_max_ps(a, b)
#define V_MIN(a, b) _mm256_min_ps(a, b)
#define V_POW2N(t) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23))

#include "transpose8x8_avx2.h"
#define TRANSPOSE_8X8 transpose8x8_avx2

#include "kernels_template.h"

#pragma clang attribute pop

// Outside the target region: only returns a pointer, safe to call on any CPU.
const IdvKernels *idv_kernels_avx2(void) { return &table_avx2; }

#else

const IdvKernels *idv_kernels_avx2(void) { return 0; }

#endif
