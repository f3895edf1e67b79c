// Thin C wrappers around libjpeg-turbo and libpng.
//
// Both libraries report fatal errors through setjmp/longjmp, which Swift cannot do, and
// libjpeg's default handler calls exit(). These functions catch every error inside C and
// return a status code with a one-line message instead; nothing here prints or exits.
#ifndef CIMAGECODECS_H
#define CIMAGECODECS_H

#include <stddef.h>
#include <stdint.h>

#define ICC_MESSAGE_SIZE 256

/// Status codes of the decode / encode functions.
enum {
    ICC_OK = 0,
    /// The data is not a valid image of this format (corrupt or truncated).
    ICC_CORRUPT = 1,
    /// A valid file this wrapper does not turn into pixels (e.g. 12-bit JPEG).
    ICC_UNSUPPORTED = 2,
    /// Out of memory or an image too large to hold.
    ICC_TOO_LARGE = 3,
};

/// What the samples in `pixels` mean.
enum {
    ICC_GRAY = 1,       // 1 channel
    ICC_GRAY_ALPHA = 2, // 2 channels
    ICC_RGB = 3,        // 3 channels
    ICC_RGBA = 4,       // 4 channels
    ICC_CMYK = 5,       // 4 channels, as stored in the JPEG (Adobe files store them inverted)
};

/// A decoded image: rows packed top to bottom, channels interleaved, samples of
/// `bytes_per_sample` bytes (2 = big-endian 16-bit, as PNG stores them). `pixels` is
/// malloc'ed; release it with icc_free.
typedef struct {
    int width;
    int height;
    int channels;
    int layout;
    int bytes_per_sample;
    /// PNG: bit depth in the file (1, 2, 4, 8, 16); PNG colour type; 1 if interlaced.
    int png_bit_depth;
    int png_color_type;
    int interlaced;
    /// JPEG: 1 if progressive; 1 if an Adobe APP14 marker was present.
    int progressive;
    int adobe_marker;
    uint8_t *pixels;
} icc_image;

/// What one decode may cost, checked before the decoder allocates (the Swift side passes
/// `Limits.imagePixels`, `Limits.imageDecodedBytes` and `Limits.jpegScans`).
typedef struct {
    /// Pixels (width x height) of one image.
    long max_pixels;
    /// Bytes of the decoded buffer, and of libjpeg's own working memory.
    long max_bytes;
    /// Scans of a progressive JPEG.
    int max_scans;
} icc_limits;

/// Decodes a JPEG held in memory. Gray stays gray, YCbCr/RGB become RGB, CMYK/YCCK become
/// CMYK. On failure returns a status and fills `message`.
int icc_jpeg_decode(const uint8_t *data, size_t size, icc_limits limits, icc_image *out, char message[ICC_MESSAGE_SIZE]);

/// Decodes a PNG held in memory without colour management: palettes and 1/2/4-bit gray
/// are expanded to 8 bits, 16-bit samples are kept, alpha is kept. Reading stops at the end
/// of the image data: compressed data after the last row is never inflated.
int icc_png_decode(const uint8_t *data, size_t size, icc_limits limits, icc_image *out, char message[ICC_MESSAGE_SIZE]);

/// Encodes 8-bit RGB rows to a PNG in memory (`*png` is malloc'ed; release with icc_free).
int icc_png_encode_rgb(const uint8_t *rgb, int width, int height, uint8_t **png, size_t *png_size,
                       char message[ICC_MESSAGE_SIZE]);

void icc_free(void *pointer);

#endif
