// PNG <-> pixels with libpng, with libpng's longjmp error handling kept inside C.
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

static void read_bytes(png_structp png, png_bytep destination, size_t count) {
    codec_state *state = (codec_state *)png_get_io_ptr(png);
    if (count > state->size - state->position) {
        state->status = ICC_CORRUPT;
        png_error(png, "truncated PNG data (premature end of file)");
    }
    memcpy(destination, state->data + state->position, count);
    state->position += count;
}

int icc_png_decode(const uint8_t *data, size_t size, icc_image *out, char message[ICC_MESSAGE_SIZE]) {
    memset(out, 0, sizeof(*out));
    message[0] = 0;
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        snprintf(message, ICC_MESSAGE_SIZE, "not a PNG signature");
        return ICC_CORRUPT;
    }
    codec_state state = {.data = data, .size = size, .position = 0, .message = message, .status = ICC_CORRUPT};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, on_error, on_warning);
    if (!png) {
        snprintf(message, ICC_MESSAGE_SIZE, "out of memory");
        return ICC_TOO_LARGE;
    }
    png_infop info = png_create_info_struct(png);
    // Volatile: assigned after setjmp and read after a longjmp back.
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        if (message[0] == 0) snprintf(message, ICC_MESSAGE_SIZE, "out of memory");
        return state.status;
    }
    png_set_read_fn(png, &state, read_bytes);
    // Our own ceiling replaces libpng's 1,000,000 x 1,000,000 default.
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);

    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    out->png_bit_depth = bit_depth;
    out->png_color_type = color_type;
    out->interlaced = interlace != PNG_INTERLACE_NONE;
    if (!icc_size_ok((long)width, (long)height, message)) {
        png_destroy_read_struct(&png, &info, NULL);
        return ICC_TOO_LARGE;
    }
    // Expand to whole bytes only: no gamma, no background, no tRNS-to-alpha. PIL ignores
    // gAMA/cHRM/iCCP and a tRNS colour key when it converts to RGB, and so do we.
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    int depth = png_get_bit_depth(png, info);
    int layout;
    switch (png_get_color_type(png, info)) {
    case PNG_COLOR_TYPE_GRAY: layout = ICC_GRAY; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: layout = ICC_GRAY_ALPHA; break;
    case PNG_COLOR_TYPE_RGB: layout = ICC_RGB; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: layout = ICC_RGBA; break;
    default:
        snprintf(message, ICC_MESSAGE_SIZE, "PNG colour type %d is not handled", color_type);
        png_destroy_read_struct(&png, &info, NULL);
        return ICC_UNSUPPORTED;
    }
    size_t stride = png_get_rowbytes(png, info);
    if (stride != (size_t)width * (size_t)channels * (size_t)(depth / 8)) {
        snprintf(message, ICC_MESSAGE_SIZE, "unexpected PNG row size after expansion");
        png_destroy_read_struct(&png, &info, NULL);
        return ICC_UNSUPPORTED;
    }
    pixels = malloc(stride * (size_t)height);
    rows = malloc(sizeof(png_bytep) * (size_t)height);
    if (!pixels || !rows) {
        state.status = ICC_TOO_LARGE;
        png_error(png, "out of memory");
    }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + stride * y;
    png_read_image(png, rows);
    // No png_read_end: like PIL, accept a file that ends after its image data.
    free(rows);
    rows = NULL;
    png_destroy_read_struct(&png, &info, NULL);

    out->width = (int)width;
    out->height = (int)height;
    out->channels = channels;
    out->layout = layout;
    out->bytes_per_sample = depth / 8;
    out->pixels = pixels;
    return ICC_OK;
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
    if (!icc_size_ok(width, height, message)) return ICC_TOO_LARGE;
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
