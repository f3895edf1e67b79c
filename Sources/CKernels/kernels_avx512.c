// The kernels for AVX-512F (Skylake-SP and later, Zen 4 and later): 32 zmm registers, so a
// 12 x 32 tile (24 accumulators, 2 B vectors, 1 broadcast).
//
// Not run on the AVX2 machine this was written on: it is the template of kernels_avx2.c with
// 512-bit vocabulary, and the kernel tests run it wherever the CPU has AVX-512.
#include "CKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)

typedef __m512 vf;
#define VL 16
#define MR 12
// 6 x 64 remainder tiles: 24 accumulators, 4 B vectors and the broadcast of 32 registers.
#define PAIR_ROWS 6
// Not unrolled: 12 row pointers, the prefetch and the loop counters exceed the 16 general
// registers, and unrolled the compiler reloads most row pointers from the stack every step
// (a load per FMA pair, seen in the object code); rolled, it keeps all but two in registers.
#define TILE_STEPS_PRAGMA _Pragma("clang loop unroll(disable)")
#define ISA_NAME(x) x##_avx512
#define ISA_ID IDV_ISA_AVX512
#define PEAK_CHAINS 16
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_SUB(a, b) _mm512_sub_ps(a, b)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_DIV(a, b) _mm512_div_ps(a, b)
// vmaxps/vminps return the second operand when either is NaN, at every width.
#define V_MAX(a, b) _mm512_max_ps(a, b)
#define V_MIN(a, b) _mm512_min_ps(a, b)
#define V_POW2N(t) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t), 23))

#include "transpose8x8_avx2.h"
#define TRANSPOSE_8X8 transpose8x8_avx2

#include "kernels_template.h"

#pragma clang attribute pop

const IdvKernels *idv_kernels_avx512(void) { return &table_avx512; }

#else

const IdvKernels *idv_kernels_avx512(void) { return 0; }

#endif
