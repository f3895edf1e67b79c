// JPEG -> pixels with libjpeg-turbo, with libjpeg's longjmp error handling kept inside C.
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "CImageCodecs.h"
#include "limits_internal.h"

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf escape;
    int status;
    char *message;
} error_state;

// Counts scans as libjpeg consumes them: a progressive file may hold thousands of (empty)
// scans, each a pass over every block of the image, so a 60 KB file could keep the decoder
// busy for minutes. libjpeg-turbo's own answer (djpeg -maxscans) is this hook.
typedef struct {
    struct jpeg_progress_mgr base;
    int max_scans;
} progress_state;

static void on_progress(j_common_ptr cinfo) {
    progress_state *progress = (progress_state *)cinfo->progress;
    j_decompress_ptr decompress = (j_decompress_ptr)cinfo;
    if (decompress->input_scan_number > progress->max_scans) {
        error_state *state = (error_state *)cinfo->err;
        state->status = ICC_TOO_LARGE;
        snprintf(state->message, ICC_MESSAGE_SIZE, "progressive JPEG with more than %d scans (a decoding-time attack?)",
                 progress->max_scans);
        longjmp(state->escape, 1);
    }
}

static void format_message(j_common_ptr cinfo, char *message) {
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    snprintf(message, ICC_MESSAGE_SIZE, "%s", text);
}

// libjpeg's default error_exit prints and calls exit(); leave through the jmp_buf instead.
static void on_error(j_common_ptr cinfo) {
    error_state *state = (error_state *)cinfo->err;
    switch (cinfo->err->msg_code) {
    case JERR_BAD_PRECISION:
    case JERR_CONVERSION_NOTIMPL:
    case JERR_NOT_COMPILED:
    case JERR_SOF_UNSUPPORTED:
    case JERR_BAD_IN_COLORSPACE:
        state->status = ICC_UNSUPPORTED;
        break;
    case JERR_OUT_OF_MEMORY:
    case JERR_NO_BACKING_STORE:
        state->status = ICC_TOO_LARGE;
        break;
    default:
        state->status = ICC_CORRUPT;
    }
    format_message(cinfo, state->message);
    longjmp(state->escape, 1);
}

// Warnings (level -1) are where libjpeg reports a truncated file: it pads the missing
// data with grey and carries on. PIL refuses truncated images, so do we; other warnings
// (e.g. stray bytes before a marker) are tolerated as PIL tolerates them.
static void on_message(j_common_ptr cinfo, int level) {
    error_state *state = (error_state *)cinfo->err;
    if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        state->status = ICC_CORRUPT;
        snprintf(state->message, ICC_MESSAGE_SIZE, "truncated JPEG data (premature end of file)");
        longjmp(state->escape, 1);
    }
    if (level == -1) cinfo->err->num_warnings++;
}

static void silent_output(j_common_ptr cinfo) { (void)cinfo; }

int icc_jpeg_decode(const uint8_t *data, size_t size, icc_limits limits, icc_image *out, char message[ICC_MESSAGE_SIZE]) {
    memset(out, 0, sizeof(*out));
    message[0] = 0;
    if (size > (size_t)0x7fffffff) {
        snprintf(message, ICC_MESSAGE_SIZE, "file larger than 2 GiB");
        return ICC_TOO_LARGE;
    }
    struct jpeg_decompress_struct cinfo;
    error_state state;
    cinfo.err = jpeg_std_error(&state.base);
    state.base.error_exit = on_error;
    state.base.emit_message = on_message;
    state.base.output_message = silent_output;
    state.status = ICC_OK;
    state.message = message;
    // Volatile: assigned after setjmp and read after a longjmp back.
    uint8_t *volatile pixels = NULL;

    progress_state progress;
    memset(&progress, 0, sizeof(progress));
    progress.base.progress_monitor = on_progress;
    progress.max_scans = limits.max_scans;

    jpeg_create_decompress(&cinfo);
    cinfo.progress = &progress.base;
    // libjpeg's working memory (the whole-image coefficient buffer of a progressive file is
    // the large part); over it, libjpeg-turbo fails with JERR_NO_BACKING_STORE.
    cinfo.mem->max_memory_to_use = limits.max_bytes;
    if (setjmp(state.escape)) {
        free(pixels);
        jpeg_destroy_decompress(&cinfo);
        return state.status;
    }
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);

    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo.out_color_space = JCS_GRAYSCALE;
        out->layout = ICC_GRAY;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        cinfo.out_color_space = JCS_RGB;
        out->layout = ICC_RGB;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo.out_color_space = JCS_CMYK;
        out->layout = ICC_CMYK;
        break;
    default:
        snprintf(message, ICC_MESSAGE_SIZE, "JPEG with %d components in an unknown colour space", cinfo.num_components);
        jpeg_destroy_decompress(&cinfo);
        return ICC_UNSUPPORTED;
    }
    // libjpeg's defaults (islow IDCT, fancy upsampling) are what PIL decodes with.
    out->progressive = jpeg_has_multiple_scans(&cinfo) ? 1 : 0;
    out->adobe_marker = cinfo.saw_Adobe_marker ? 1 : 0;
    long bytes_per_pixel = out->layout == ICC_GRAY ? 1 : out->layout == ICC_CMYK ? 4 : 3;
    if (!icc_size_ok((long)cinfo.image_width, (long)cinfo.image_height, bytes_per_pixel, limits, message) ||
        !icc_evidence_ok((long)cinfo.image_width * (long)cinfo.image_height, 512, size, "pixels", message)) {
        jpeg_destroy_decompress(&cinfo);
        return ICC_TOO_LARGE;
    }

    jpeg_start_decompress(&cinfo);
    int width = (int)cinfo.output_width, height = (int)cinfo.output_height;
    int channels = cinfo.output_components;
    size_t stride = (size_t)width * (size_t)channels;
    pixels = malloc(stride * (size_t)height);
    if (!pixels) {
        snprintf(message, ICC_MESSAGE_SIZE, "out of memory for a %dx%d image", width, height);
        jpeg_destroy_decompress(&cinfo);
        return ICC_TOO_LARGE;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);

    out->width = width;
    out->height = height;
    out->channels = channels;
    out->bytes_per_sample = 1;
    out->pixels = pixels;
    return ICC_OK;
}

void icc_free(void *pointer) { free(pointer); }
