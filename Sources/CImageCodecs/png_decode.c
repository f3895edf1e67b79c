// PNG -> pixels with libpng's progressive reader, with libpng's longjmp error handling kept
// inside C.
//
// The progressive reader is fed the file a block at a time and calls back once per row, so
// decoding stops as soon as the last row of the last pass has arrived: a hostile IDAT stream
// that goes on inflating for gigabytes after the image (libpng's sequential reader inflates
// all of it to check the end of the stream) costs nothing. Everything is sized from the
// header after the pixel and byte budgets are checked.
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "CImageCodecs.h"
#include "limits_internal.h"

typedef struct {
    char *message;
    int status;
    icc_limits limits;
    size_t file_bytes;
    icc_image *out;
    uint8_t *pixels;
    png_bytep *rows;
    png_uint_32 width, height;
    // The pass whose last row completes the image (0 when not interlaced).
    int last_pass;
    int done;
} decode_state;

static void on_error(png_structp png, png_const_charp text) {
    decode_state *state = (decode_state *)png_get_error_ptr(png);
    // The first error wins: libpng may report a second one while unwinding.
    if (state->message[0] == 0) snprintf(state->message, ICC_MESSAGE_SIZE, "%s", text);
    png_longjmp(png, 1);
}

// libpng warns about things PIL also ignores (bad ancillary CRCs, odd sRGB profiles).
static void on_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

static void fail(png_structp png, decode_state *state, int status, const char *text) {
    state->status = status;
    if (state->message[0] == 0) snprintf(state->message, ICC_MESSAGE_SIZE, "%s", text);
    png_longjmp(png, 1);
}

static void on_info(png_structp png, png_infop info) {
    decode_state *state = (decode_state *)png_get_progressive_ptr(png);
    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    icc_image *out = state->out;
    out->png_bit_depth = bit_depth;
    out->png_color_type = color_type;
    out->interlaced = interlace != PNG_INTERLACE_NONE;
    // The widest pixel after expansion: 16-bit RGBA, 8 bytes.
    if (!icc_size_ok((long)width, (long)height, 8, state->limits, state->message)) {
        fail(png, state, ICC_TOO_LARGE, state->message);
    }
    // Raw (filtered) bytes as stored: one filter byte per row plus the row at the file's depth.
    long samples = color_type == PNG_COLOR_TYPE_RGB ? 3 : color_type == PNG_COLOR_TYPE_RGB_ALPHA ? 4
                 : color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
    long raw = (long)height * (1 + ((long)width * samples * bit_depth + 7) / 8);
    if (!icc_evidence_ok(raw, 1032, state->file_bytes, "bytes of image data", state->message)) {
        fail(png, state, ICC_TOO_LARGE, state->message);
    }
    // Expand to whole bytes only: no gamma, no background, no tRNS-to-alpha. PIL ignores
    // gAMA/cHRM/iCCP and a tRNS colour key when it converts to RGB, and so do we.
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    int passes = interlace != PNG_INTERLACE_NONE ? png_set_interlace_handling(png) : 1;
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    int depth = png_get_bit_depth(png, info);
    switch (png_get_color_type(png, info)) {
    case PNG_COLOR_TYPE_GRAY: out->layout = ICC_GRAY; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: out->layout = ICC_GRAY_ALPHA; break;
    case PNG_COLOR_TYPE_RGB: out->layout = ICC_RGB; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: out->layout = ICC_RGBA; break;
    default: fail(png, state, ICC_UNSUPPORTED, "PNG colour type is not handled");
    }
    size_t stride = png_get_rowbytes(png, info);
    if (stride != (size_t)width * (size_t)channels * (size_t)(depth / 8)) {
        fail(png, state, ICC_UNSUPPORTED, "unexpected PNG row size after expansion");
    }
    // Interlaced rows are combined into what earlier passes left: start from zeros.
    state->pixels = calloc((size_t)height, stride);
    state->rows = malloc(sizeof(png_bytep) * (size_t)height);
    if (!state->pixels || !state->rows) fail(png, state, ICC_TOO_LARGE, "out of memory");
    for (png_uint_32 y = 0; y < height; y++) state->rows[y] = state->pixels + stride * y;
    state->width = width;
    state->height = height;
    state->last_pass = 0;
    if (passes > 1) {
        for (int pass = 0; pass < 7; pass++) {
            if (PNG_PASS_COLS(width, pass) > 0 && PNG_PASS_ROWS(height, pass) > 0) state->last_pass = pass;
        }
    }
    out->width = (int)width;
    out->height = (int)height;
    out->channels = channels;
    out->bytes_per_sample = depth / 8;
}

static void on_row(png_structp png, png_bytep new_row, png_uint_32 row, int pass) {
    decode_state *state = (decode_state *)png_get_progressive_ptr(png);
    if (row >= state->height) fail(png, state, ICC_CORRUPT, "PNG row out of range");
    if (new_row != NULL) png_progressive_combine_row(png, state->rows[row], new_row);
    if (pass == state->last_pass && row == state->height - 1) state->done = 1;
}

static void on_end(png_structp png, png_infop info) {
    (void)png;
    (void)info;
}

int icc_png_decode(const uint8_t *data, size_t size, icc_limits limits, icc_image *out, char message[ICC_MESSAGE_SIZE]) {
    memset(out, 0, sizeof(*out));
    message[0] = 0;
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        snprintf(message, ICC_MESSAGE_SIZE, "not a PNG signature");
        return ICC_CORRUPT;
    }
    // Volatile: written by callbacks between setjmp and a longjmp back, read after it.
    volatile decode_state state;
    memset((void *)&state, 0, sizeof(state));
    state.message = message;
    state.status = ICC_CORRUPT;
    state.limits = limits;
    state.file_bytes = size;
    state.out = out;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, (void *)&state, on_error, on_warning);
    if (!png) {
        snprintf(message, ICC_MESSAGE_SIZE, "out of memory");
        return ICC_TOO_LARGE;
    }
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        free(state.pixels);
        free(state.rows);
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        if (message[0] == 0) snprintf(message, ICC_MESSAGE_SIZE, "out of memory");
        int status = state.status;
        memset(out, 0, sizeof(*out));
        return status;
    }
    // Our own ceiling replaces libpng's 1,000,000 x 1,000,000 default.
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_set_progressive_read_fn(png, (void *)&state, on_info, on_row, on_end);
    // Fed in blocks so that nothing after the last row is looked at.
    const size_t block = 64 * 1024;
    size_t position = 0;
    while (position < size && !state.done) {
        size_t count = size - position < block ? size - position : block;
        png_process_data(png, info, (png_bytep)(data + position), count);
        position += count;
    }
    if (!state.done) {
        // Like PIL, a file may end after its image data, but not before.
        fail(png, (decode_state *)&state, ICC_CORRUPT, "truncated PNG data (premature end of file)");
    }
    free(state.rows);
    out->pixels = state.pixels;
    png_destroy_read_struct(&png, &info, NULL);
    return ICC_OK;
}
