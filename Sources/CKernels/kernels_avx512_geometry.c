// The AVX-512 kernels' geometry (16 lanes, 12 x 32 tiles, K blocks and query tiles sized for
// them) in generic vectors, for tests only: on a machine without AVX-512 it exercises all of
// kernels_avx512.c except its page of intrinsic definitions. Never chosen to run a model.
#include "CKernels.h"

// 64-byte vectors passed between this file's static functions: no ABI crosses the file.
#pragma clang diagnostic ignored "-Wpsabi"

#define VL 16
#include "generic_vectors.h"

#define MR 12
#define PAIR_ROWS 6
#define TILE_STEPS_PRAGMA _Pragma("clang loop unroll(disable)")
#define ISA_NAME(x) x##_avx512_geometry
#define ISA_ID IDV_ISA_AVX512_GEOMETRY
#define PEAK_CHAINS 16

#include "kernels_template.h"

const IdvKernels *idv_kernels_avx512_geometry(void) { return &table_avx512_geometry; }
