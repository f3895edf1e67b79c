// The patch embedding's im2col, once per image in every run (unlike pack.c's once per model),
// compiled for the x86-64 baseline: a plain copy loop the compiler vectorises with SSE.
#include "CKernels.h"

void idv_unfold_patches(const float *image, size_t channels, size_t height, size_t width, size_t patch,
                        size_t patch_begin, size_t patch_end, float *columns) {
    const size_t per_row = width / patch, k = channels * patch * patch;
    for (size_t n = patch_begin; n < patch_end; n++) {
        const size_t py = n / per_row, px = n % per_row;
        float *out = columns + n * k;
        for (size_t c = 0; c < channels; c++) {
            for (size_t ky = 0; ky < patch; ky++) {
                const float *row = image + (c * height + py * patch + ky) * width + px * patch;
                // A plain loop, vectorised by the compiler: a memcpy call per 16-float segment
                // (9408 of them in a 224 px image) cost more than the copy.
                for (size_t x = 0; x < patch; x++) out[x] = row[x];
                out += patch;
            }
        }
    }
}
