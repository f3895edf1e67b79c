// Convolutions' im2col, once per image in every run (unlike pack.c's once per model), for the
// patch embedding (kernel = stride, no padding) and for conv2d (LV-ViT's stem), compiled for
// the x86-64 baseline: plain copy loops the compiler vectorises with SSE.
#include <stddef.h>

#include "CKernels.h"

void idv_unfold_windows(const float *image, size_t channels, size_t height, size_t width, size_t kernel, size_t stride,
                        size_t padding, size_t out_width, size_t position_begin, size_t position_end, float *columns) {
    const size_t depth = channels * kernel * kernel;
    const ptrdiff_t h = (ptrdiff_t)height, w = (ptrdiff_t)width, k = (ptrdiff_t)kernel;
    for (size_t p = position_begin; p < position_end; p++) {
        const ptrdiff_t top = (ptrdiff_t)((p / out_width) * stride) - (ptrdiff_t)padding;
        const ptrdiff_t left = (ptrdiff_t)((p % out_width) * stride) - (ptrdiff_t)padding;
        // Most windows lie inside the image horizontally: their rows are plain copies.
        const int inside = left >= 0 && left + k <= w;
        float *out = columns + p * depth;
        for (size_t c = 0; c < channels; c++) {
            const float *plane = image + c * height * width;
            for (ptrdiff_t ky = 0; ky < k; ky++, out += kernel) {
                const ptrdiff_t iy = top + ky;
                if (iy < 0 || iy >= h) {
                    for (ptrdiff_t x = 0; x < k; x++) out[x] = 0;
                    continue;
                }
                const float *row = plane + iy * w;
                if (inside) {
                    // A plain loop, vectorised by the compiler: a memcpy call per 16-float
                    // segment (9408 of them in a 224 px image's patches) cost more than the copy.
                    for (ptrdiff_t x = 0; x < k; x++) out[x] = row[left + x];
                } else {
                    for (ptrdiff_t x = 0; x < k; x++) {
                        const ptrdiff_t ix = left + x;
                        out[x] = ix >= 0 && ix < w ? row[ix] : 0;
                    }
                }
            }
        }
    }
}
