// Weight packing, once per model when the interpreter is made. Not performance critical:
// DeiT-B's 86 M weights pack in a fraction of a second, split over threads by panel.
#include "CKernels.h"

size_t idv_packed_floats(size_t rows, size_t k, size_t nr) { return (rows + nr - 1) / nr * nr * k; }

void idv_pack_panels(const float *w, size_t rows, size_t k, size_t nr, size_t panel_begin, size_t panel_end,
                     float *out) {
    for (size_t p = panel_begin; p < panel_end; p++) {
        float *panel = out + p * k * nr;
        const size_t first = p * nr;
        const size_t width = rows - first < nr ? rows - first : nr;
        // Reading `width` rows side by side keeps `width` sequential streams; each cache line
        // of each row serves 16 steps of kk.
        for (size_t kk = 0; kk < k; kk++) {
            float *dst = panel + kk * nr;
            for (size_t j = 0; j < width; j++) dst[j] = w[(first + j) * k + kk];
            for (size_t j = width; j < nr; j++) dst[j] = 0;
        }
    }
}
