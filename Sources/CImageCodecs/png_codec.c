// pixels -> PNG with libpng, with libpng's longjmp error handling kept inside C (decoding
// is in png_decode.c).
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "CImageCodecs.h"
#include "limits_internal.h"

/// Where libpng's callbacks leave their state: the input cursor or the output buffer, and
/// the caller's message buffer.
typedef struct {
    const uint8_t *data;
    size_t size;
    size_t position;
    uint8_t *output;
    size_t output_size;
    size_t output_capacity;
    char *message;
    int status;
} codec_state;

static void on_error(png_structp png, png_const_charp text) {
    codec_state *state = (codec_state *)png_get_error_ptr(png);
    // The first error wins: libpng may report a second one while unwinding.
    if (state->message[0] == 0) snprintf(state->message, ICC_MESSAGE_SIZE, "%s", text);
    png_longjmp(png, 1);
}

// libpng warns about things PIL also ignores (bad ancillary CRCs, odd sRGB profiles).
static void on_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

static void write_bytes(png_structp png, png_bytep source, size_t count) {
    codec_state *state = (codec_state *)png_get_io_ptr(png);
    if (count > state->output_capacity - state->output_size) {
        size_t capacity = state->output_capacity ? state->output_capacity : 65536;
        while (capacity - state->output_size < count) capacity *= 2;
        uint8_t *grown = realloc(state->output, capacity);
        if (!grown) {
            state->status = ICC_TOO_LARGE;
            png_error(png, "out of memory");
        }
        state->output = grown;
        state->output_capacity = capacity;
    }
    memcpy(state->output + state->output_size, source, count);
    state->output_size += count;
}

static void flush_nothing(png_structp png) { (void)png; }

int icc_png_encode_rgb(const uint8_t *rgb, int width, int height, uint8_t **png_data, size_t *png_size,
                       char message[ICC_MESSAGE_SIZE]) {
    *png_data = NULL;
    *png_size = 0;
    message[0] = 0;
    icc_limits limits = {.max_pixels = 1L << 30, .max_bytes = 3L << 30, .max_scans = 0};
    if (!icc_size_ok(width, height, 3, limits, message)) return ICC_TOO_LARGE;
    codec_state state = {.message = message, .status = ICC_CORRUPT};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &state, on_error, on_warning);
    if (!png) {
        snprintf(message, ICC_MESSAGE_SIZE, "out of memory");
        return ICC_TOO_LARGE;
    }
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        free(state.output);
        if (message[0] == 0) snprintf(message, ICC_MESSAGE_SIZE, "out of memory");
        return state.status;
    }
    png_set_write_fn(png, &state, write_bytes, flush_nothing);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t stride = (size_t)width * 3;
    for (int y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(rgb + stride * (size_t)y));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    *png_data = state.output;
    *png_size = state.output_size;
    return ICC_OK;
}
