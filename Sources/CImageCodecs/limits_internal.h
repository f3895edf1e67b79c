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

// Pixels a file of `file_bytes` can honestly hold: a decoder must not spend seconds and
// hundreds of megabytes on a 127-byte file whose header claims 8192 x 8192 (libjpeg fills
// missing scans with grey; libpng would inflate whatever follows). JPEG codes every 8x8 block
// of every component with at least one bit (512 pixels per byte); deflate expands at most
// 1032:1, so a PNG row of R raw bytes needs R / 1032 compressed ones. The slack lets tiny
// images through whatever their overhead.
static inline int icc_evidence_ok(long pixels_or_raw_bytes, long per_file_byte, size_t file_bytes, const char *what,
                                  char *message) {
    const long slack = 1L << 16;
    long allowed = (long)file_bytes > (0x7fffffffffffffffL - slack) / per_file_byte ? 0x7fffffffffffffffL
                                                                                    : (long)file_bytes * per_file_byte + slack;
    if (pixels_or_raw_bytes > allowed) {
        snprintf(message, ICC_MESSAGE_SIZE, "%ld %s declared by a file of %zu bytes, which cannot hold them (a decompression bomb?)",
                 pixels_or_raw_bytes, what, file_bytes);
        return 0;
    }
    return 1;
}

#endif
