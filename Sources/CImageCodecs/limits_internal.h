// Shared size guard of the decoders.
#ifndef CIMAGECODECS_LIMITS_INTERNAL_H
#define CIMAGECODECS_LIMITS_INTERNAL_H

#include <stdio.h>
#include "CImageCodecs.h"

// Refuses an image before anything is allocated for it: no pixels, more pixels than the
// budget, or a decoded buffer (width x height x bytes per pixel) over the byte budget.
static inline int icc_size_ok(long width, long height, long bytes_per_pixel, icc_limits limits, char *message) {
    if (width <= 0 || height <= 0) {
        snprintf(message, ICC_MESSAGE_SIZE, "image has no pixels (%ldx%ld)", width, height);
        return 0;
    }
    if (width > limits.max_pixels / height) {
        snprintf(message, ICC_MESSAGE_SIZE, "image of %ldx%ld pixels exceeds the limit of %ld pixels", width, height,
                 limits.max_pixels);
        return 0;
    }
    if (bytes_per_pixel > 0 && width * height > limits.max_bytes / bytes_per_pixel) {
        snprintf(message, ICC_MESSAGE_SIZE, "image of %ldx%ld pixels at %ld bytes each exceeds the decoded size limit of %ld bytes",
                 width, height, bytes_per_pixel, limits.max_bytes);
        return 0;
    }
    return 1;
}

#endif
