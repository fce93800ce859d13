/*
 * sd_png.c - grayscale PNG reading and 8/16-bit PNG writing (see sd_png.h).
 *
 * libpng reports errors by longjmp'ing out of the failing call.  Every entry
 * point here installs its own error handler (which copies libpng's message
 * into a context struct) and a setjmp target; everything that must be freed
 * after a longjmp is held in volatile locals so the cleanup path sees the
 * values they had when libpng failed.
 */
#include "sd_png.h"

#include "sd_file.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct png_err_ctx {
    char msg[256];
} png_err_ctx;

static void png_err_fn(png_structp png, png_const_charp msg)
{
    png_err_ctx *ctx = png_get_error_ptr(png);
    if (ctx)
        snprintf(ctx->msg, sizeof ctx->msg, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

static void png_warn_fn(png_structp png, png_const_charp msg)
{
    /* Warnings (bad ancillary chunk CRCs, odd gamma values, ...) do not
     * affect the pixels we read. */
    (void)png;
    (void)msg;
}

/* libpng's default reader says "Read Error" when fread comes up short. */
static const char *explain_png_msg(const char *msg)
{
    if (!strcmp(msg, "Read Error") || strstr(msg, "Not enough image data") ||
        strstr(msg, "unexpected end"))
        return "file is truncated";
    return msg;
}

static const char *color_type_name(int ct)
{
    switch (ct) {
    case PNG_COLOR_TYPE_GRAY: return "grayscale";
    case PNG_COLOR_TYPE_GRAY_ALPHA: return "grayscale with alpha";
    case PNG_COLOR_TYPE_PALETTE: return "palette (indexed colour)";
    case PNG_COLOR_TYPE_RGB: return "RGB colour";
    case PNG_COLOR_TYPE_RGB_ALPHA: return "RGBA colour";
    default: return "unknown colour type";
    }
}

/* Check the PNG signature at the start of f (consumes its 8 bytes). */
static int check_sig(FILE *f, const char *path, sd_error *err)
{
    unsigned char sig[8];
    size_t got = fread(sig, 1, sizeof sig, f);
    if (got != sizeof sig || png_sig_cmp(sig, 0, sizeof sig)) {
        if (got == 0)
            return sd_error_set(err, SD_EFORMAT, "%s: empty file, not a PNG image", path);
        return sd_error_set(err, SD_EFORMAT, "%s: not a PNG file (bad signature)", path);
    }
    return 0;
}

int sd_png_read_info_file(FILE *f, const char *path, sd_png_info *info, sd_error *err)
{
    int rc = check_sig(f, path, err);
    if (rc)
        return rc;
    png_err_ctx ectx = {{0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ectx, png_err_fn, png_warn_fn);
    png_infop pi = png ? png_create_info_struct(png) : NULL;
    if (!png || !pi) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return sd_error_set(err, SD_ENOMEM, "%s: cannot create PNG reader", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &pi, NULL);
        return sd_error_set(err, SD_EFORMAT, "%s: corrupt PNG header: %s", path,
                            explain_png_msg(ectx.msg));
    }
    png_set_user_limits(png, SD_PNG_MAX_DIM, SD_PNG_MAX_DIM);
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_read_info(png, pi);
    int ct = png_get_color_type(png, pi);
    info->width = (int)png_get_image_width(png, pi);
    info->height = (int)png_get_image_height(png, pi);
    info->bit_depth = png_get_bit_depth(png, pi);
    info->palette = ct == PNG_COLOR_TYPE_PALETTE;
    info->channels = ct == PNG_COLOR_TYPE_PALETTE ? 3 : png_get_channels(png, pi);
    png_destroy_read_struct(&png, &pi, NULL);
    return 0;
}

int sd_png_read_info(const char *path, sd_png_info *info, sd_error *err)
{
    FILE *f = NULL;
    int rc = sd_file_open(path, NULL, &f, err);
    if (rc)
        return rc;
    rc = sd_png_read_info_file(f, path, info, err);
    fclose(f);
    return rc;
}

/* Shared decoder.  When *pix is NULL a buffer is allocated; otherwise the
 * image must be expect_w x expect_h and is decoded into *pix. */
static int read_gray16(FILE *f, const char *path, uint16_t **pix, int *w_out, int *h_out,
                       int *depth_out, int expect_w, int expect_h, sd_error *err)
{
    int rc = check_sig(f, path, err);
    if (rc)
        return rc;
    png_err_ctx ectx = {{0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ectx, png_err_fn, png_warn_fn);
    png_infop pi = png ? png_create_info_struct(png) : NULL;
    if (!png || !pi) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return sd_error_set(err, SD_ENOMEM, "%s: cannot create PNG reader", path);
    }
    /* Modified after setjmp and needed by the cleanup path: volatile. */
    uint16_t *volatile buf = NULL;
    png_bytep *volatile rows = NULL;
    volatile int owned = 0;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &pi, NULL);
        free(rows);
        if (owned)
            free(buf);
        return sd_error_set(err, SD_EFORMAT, "%s: corrupt or unreadable PNG: %s", path,
                            explain_png_msg(ectx.msg));
    }
    png_set_user_limits(png, SD_PNG_MAX_DIM, SD_PNG_MAX_DIM);
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_read_info(png, pi);
    int w = (int)png_get_image_width(png, pi), h = (int)png_get_image_height(png, pi);
    int ct = png_get_color_type(png, pi), depth = png_get_bit_depth(png, pi);
    if (ct != PNG_COLOR_TYPE_GRAY) {
        png_destroy_read_struct(&png, &pi, NULL);
        return sd_error_set(err, SD_EFORMAT,
                            "%s: %s image; only grayscale (8- or 16-bit) PNGs are accepted", path,
                            color_type_name(ct));
    }
    if (*pix && (w != expect_w || h != expect_h)) {
        png_destroy_read_struct(&png, &pi, NULL);
        return sd_error_set(err, SD_EFORMAT, "%s: image is %dx%d, expected %dx%d", path, w, h,
                            expect_w, expect_h);
    }
    if (depth < 8)
        png_set_expand_gray_1_2_4_to_8(png); /* scales to the full 0..255 range */
    png_set_interlace_handling(png);
    png_read_update_info(png, pi);

    if (*pix) {
        buf = *pix;
    } else {
        buf = malloc((size_t)w * (size_t)h * sizeof(uint16_t));
        owned = 1;
    }
    rows = malloc((size_t)h * sizeof *rows);
    if (!buf || !rows) {
        png_destroy_read_struct(&png, &pi, NULL);
        free(rows);
        if (owned)
            free(buf);
        return sd_error_set(err, SD_ENOMEM, "%s: out of memory for a %dx%d image", path, w, h);
    }
    /* Decode the raw bytes straight into the destination: each row gets 2*w
     * bytes, enough for 16-bit samples; 8-bit rows use the first w of them
     * and are widened in place below (backwards, so nothing is overwritten
     * before it is read). */
    for (int y = 0; y < h; y++)
        rows[y] = (png_bytep)(buf + (size_t)y * (size_t)w);
    png_read_image(png, rows);
    png_read_end(png, NULL); /* catches a file cut after the last IDAT */
    for (int y = 0; y < h; y++) {
        uint16_t *dst = buf + (size_t)y * (size_t)w;
        const unsigned char *src = (const unsigned char *)dst;
        if (depth == 16) {
            for (int x = 0; x < w; x++) {
                unsigned v = ((unsigned)src[2 * x] << 8) | src[2 * x + 1];
                dst[x] = (uint16_t)v;
            }
        } else {
            for (int x = w - 1; x >= 0; x--)
                dst[x] = (uint16_t)(src[x] * 257u);
        }
    }
    png_destroy_read_struct(&png, &pi, NULL);
    free(rows);
    *pix = buf;
    if (w_out)
        *w_out = w;
    if (h_out)
        *h_out = h;
    if (depth_out)
        *depth_out = depth;
    return 0;
}

int sd_png_read_gray16_file(FILE *f, const char *path, uint16_t **pix, int *w, int *h,
                            int *bit_depth_out, sd_error *err)
{
    *pix = NULL;
    return read_gray16(f, path, pix, w, h, bit_depth_out, 0, 0, err);
}

int sd_png_read_gray16_into_file(FILE *f, const char *path, uint16_t *pix, int expect_w,
                                 int expect_h, sd_error *err)
{
    if (!pix || expect_w <= 0 || expect_h <= 0)
        return sd_error_set(err, SD_EINVAL, "%s: bad destination for PNG decode", path);
    uint16_t *p = pix;
    return read_gray16(f, path, &p, NULL, NULL, NULL, expect_w, expect_h, err);
}

int sd_png_read_gray16(const char *path, uint16_t **pix, int *w, int *h, int *bit_depth_out,
                       sd_error *err)
{
    FILE *f = NULL;
    *pix = NULL;
    int rc = sd_file_open(path, NULL, &f, err);
    if (rc)
        return rc;
    rc = sd_png_read_gray16_file(f, path, pix, w, h, bit_depth_out, err);
    fclose(f);
    return rc;
}

int sd_png_read_gray16_into(const char *path, uint16_t *pix, int expect_w, int expect_h,
                            sd_error *err)
{
    FILE *f = NULL;
    int rc = sd_file_open(path, NULL, &f, err);
    if (rc)
        return rc;
    rc = sd_png_read_gray16_into_file(f, path, pix, expect_w, expect_h, err);
    fclose(f);
    return rc;
}

/* ---- writing ---- */

typedef struct mem_sink {
    uint8_t *data;
    size_t len, cap;
    int failed;
} mem_sink;

static void mem_write_fn(png_structp png, png_bytep data, png_size_t len)
{
    mem_sink *s = png_get_io_ptr(png);
    if (s->failed)
        return;
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + len)
            cap *= 2;
        uint8_t *p = realloc(s->data, cap);
        if (!p) {
            s->failed = 1;
            png_error(png, "out of memory");
        }
        s->data = p;
        s->cap = cap;
    }
    memcpy(s->data + s->len, data, len);
    s->len += len;
}

static void mem_flush_fn(png_structp png)
{
    (void)png;
}

/* Writes to f (when non-NULL) or to sink.  bytes_per_sample is 1 or 2; for
 * 2 the pixels are uint16 in host order and are written big-endian. */
static int write_png(FILE *f, mem_sink *sink, const char *what, const void *pix, int w, int h,
                     int channels, int depth, const char *comment, sd_error *err)
{
    png_err_ctx ectx = {{0}};
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, &ectx, png_err_fn, png_warn_fn);
    png_infop pi = png ? png_create_info_struct(png) : NULL;
    if (!png || !pi) {
        png_destroy_write_struct(png ? &png : NULL, NULL);
        return sd_error_set(err, SD_ENOMEM, "%s: cannot create PNG writer", what);
    }
    unsigned char *volatile row = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &pi);
        free(row);
        return sd_error_set(err, SD_EIO, "%s: writing PNG failed: %s", what, ectx.msg);
    }
    if (f)
        png_init_io(png, f);
    else
        png_set_write_fn(png, sink, mem_write_fn, mem_flush_fn);
    int ct = channels == 1   ? PNG_COLOR_TYPE_GRAY
             : channels == 3 ? PNG_COLOR_TYPE_RGB
                             : PNG_COLOR_TYPE_RGB_ALPHA;
    png_set_IHDR(png, pi, (png_uint_32)w, (png_uint_32)h, depth, ct, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_text text;
    if (comment) {
        memset(&text, 0, sizeof text);
        text.compression = PNG_TEXT_COMPRESSION_NONE;
        text.key = (png_charp) "Comment";
        text.text = (png_charp)comment;
        png_set_text(png, pi, &text, 1);
    }
    /* Level 4 compresses the phantoms almost as well as 6 and much faster. */
    png_set_compression_level(png, 4);
    png_write_info(png, pi);
    size_t rowbytes = (size_t)w * (size_t)channels * (depth == 16 ? 2u : 1u);
    if (depth == 16) {
        row = malloc(rowbytes);
        if (!row)
            png_error(png, "out of memory");
    }
    for (int y = 0; y < h; y++) {
        if (depth == 16) {
            const uint16_t *src = (const uint16_t *)pix + (size_t)y * (size_t)w;
            for (int x = 0; x < w; x++) {
                row[2 * x] = (unsigned char)(src[x] >> 8);
                row[2 * x + 1] = (unsigned char)(src[x] & 0xff);
            }
            png_write_row(png, row);
        } else {
            png_write_row(png, (png_const_bytep)pix + (size_t)y * rowbytes);
        }
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &pi);
    free(row);
    return 0;
}

static int write_file(const char *path, const void *pix, int w, int h, int channels, int depth,
                      const char *comment, sd_error *err)
{
    if (!path || !pix || w <= 0 || h <= 0 || w > SD_PNG_MAX_DIM || h > SD_PNG_MAX_DIM)
        return sd_error_set(err, SD_EINVAL, "%s: bad image for PNG write (%dx%d)",
                            path ? path : "(null)", w, h);
    if (channels != 1 && channels != 3 && channels != 4)
        return sd_error_set(err, SD_EINVAL, "%s: %d channels; PNG writer takes 1, 3 or 4", path,
                            channels);
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (!tmp)
        return sd_error_set(err, SD_ENOMEM, "%s: out of memory", path);
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int rc = sd_error_set(err, SD_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    int rc = write_png(f, NULL, path, pix, w, h, channels, depth, comment, err);
    if (fflush(f) != 0 && !rc)
        rc = sd_error_set(err, SD_EIO, "%s: write failed: %s", path, strerror(errno));
    if (fclose(f) != 0 && !rc)
        rc = sd_error_set(err, SD_EIO, "%s: close failed: %s", path, strerror(errno));
    if (!rc && rename(tmp, path) != 0)
        rc = sd_error_set(err, SD_EIO, "%s: cannot rename from %s: %s", path, tmp, strerror(errno));
    if (rc)
        remove(tmp);
    free(tmp);
    return rc;
}

int sd_png_write(const char *path, const uint8_t *pix, int w, int h, int channels, sd_error *err)
{
    return write_file(path, pix, w, h, channels, 8, NULL, err);
}

int sd_png_write_comment(const char *path, const uint8_t *pix, int w, int h, int channels,
                         const char *comment, sd_error *err)
{
    return write_file(path, pix, w, h, channels, 8, comment, err);
}

int sd_png_write_gray16(const char *path, const uint16_t *pix, int w, int h, sd_error *err)
{
    return write_file(path, pix, w, h, 1, 16, NULL, err);
}

int sd_png_encode(const uint8_t *pix, int w, int h, int channels, uint8_t **out, size_t *out_len,
                  sd_error *err)
{
    *out = NULL;
    *out_len = 0;
    if (!pix || w <= 0 || h <= 0 || w > SD_PNG_MAX_DIM || h > SD_PNG_MAX_DIM ||
        (channels != 1 && channels != 3 && channels != 4))
        return sd_error_set(err, SD_EINVAL, "PNG encode: bad image (%dx%d, %d channels)", w, h,
                            channels);
    mem_sink sink = {0};
    int rc = write_png(NULL, &sink, "PNG encode", pix, w, h, channels, 8, NULL, err);
    if (rc) {
        free(sink.data);
        return rc;
    }
    *out = sink.data;
    *out_len = sink.len;
    return 0;
}
