// Shared size guard of the decoders.
#ifndef CIMAGECODECS_LIMITS_INTERNAL_H
#define CIMAGECODECS_LIMITS_INTERNAL_H

#include <stdio.h>
#include "CImageCodecs.h"

// PIL refuses images above 2 x 89,478,485 pixels as a decompression bomb; use the same
// ceiling so a hostile header cannot make us allocate gigabytes.
#define ICC_MAX_PIXELS 178956970L

static inline int icc_size_ok(long width, long height, char *message) {
    if (width <= 0 || height <= 0) {
        snprintf(message, ICC_MESSAGE_SIZE, "image has no pixels (%ldx%ld)", width, height);
        return 0;
    }
    if (width > ICC_MAX_PIXELS / height) {
        snprintf(message, ICC_MESSAGE_SIZE, "image of %ldx%ld pixels exceeds the limit of %ld pixels", width, height,
                 ICC_MAX_PIXELS);
        return 0;
    }
    return 1;
}

#endif
