// The kernels for any CPU, in the compiler's generic 4-lane vectors (SSE2 on the x86-64
// baseline, NEON on arm64): the fallback when neither AVX2 nor AVX-512 can run, and what
// `--isa portable` forces for testing.
#include "CKernels.h"

#define VL 4
#include "generic_vectors.h"

// 4 x 8 tiles: 8 accumulators, 2 B vectors, the broadcast and a product temporary fit SSE's 16
// registers (without FMA each product needs its own register before the add; 6 rows spilled).
#define MR 4
// 2 x 16 remainder tiles: 8 accumulators, 4 B vectors, the broadcast and a product temporary.
#define PAIR_ROWS 2
#define TILE_STEPS_PRAGMA _Pragma("clang loop unroll(full)")
#define ISA_NAME(x) x##_portable
#define ISA_ID IDV_ISA_PORTABLE
#define PEAK_CHAINS 12

#include "kernels_template.h"

const IdvKernels *idv_kernels_portable(void) { return &table_portable; }
