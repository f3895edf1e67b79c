// The kernels for any CPU, in the compiler's generic vectors (4 lanes: SSE2 on the x86-64
// baseline, NEON on arm64). Multiply and add stay separate instructions where the target has
// no FMA. The fallback when neither AVX2 nor AVX-512 can run, and what `--isa portable`
// forces for testing.
#include "CKernels.h"

#include <stdint.h>
#include <string.h>

typedef float vf __attribute__((vector_size(16)));
typedef int32_t portable_vi __attribute__((vector_size(16)));

static inline vf portable_load(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void portable_store(float *p, vf v) { memcpy(p, &v, sizeof v); }

static inline vf portable_splat(float x) { return (vf){x, x, x, x}; }

// The second operand when unordered, like vmaxps / vminps.
static inline vf portable_select(portable_vi mask, vf a, vf b) {
    return (vf)((mask & (portable_vi)a) | (~mask & (portable_vi)b));
}

#define VL 4
// 4 x 8 tiles: 8 accumulators, 2 B vectors, the broadcast and a product temporary fit SSE's 16
// registers (without FMA each product needs its own register before the add; 6 rows spilled).
#define MR 4
#define ISA_NAME(x) x##_portable
#define ISA_ID IDV_ISA_PORTABLE
#define PEAK_CHAINS 12
#define V_ZERO() ((vf){0, 0, 0, 0})
#define V_SET1(x) portable_splat(x)
#define V_LOAD(p) portable_load(p)
#define V_STORE(p, v) portable_store(p, v)
#define V_FMA(a, b, c) ((a) * (b) + (c))
#define V_ADD(a, b) ((a) + (b))
#define V_SUB(a, b) ((a) - (b))
#define V_MUL(a, b) ((a) * (b))
#define V_DIV(a, b) ((a) / (b))
#define V_MAX(a, b) portable_select((a) > (b), (a), (b))
#define V_MIN(a, b) portable_select((a) < (b), (a), (b))
#define V_POW2N(t) ((vf)((((portable_vi)(t) - 0x4B400000) + 127) << 23))

#include "kernels_template.h"

const IdvKernels *idv_kernels_portable(void) { return &table_portable; }
