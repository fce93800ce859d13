/*
 * sd_png.h - PNG reading and writing for the engine (libpng).
 *
 * Reading accepts grayscale only: 1-, 2-, 4-, 8- and 16-bit, returned on the
 * 16-bit scale 0..65535 (an 8-bit value v becomes v*257, so 255 -> 65535).
 * Colour, palette and gray+alpha images are refused with a message naming the
 * file, as are truncated or corrupt files (libpng's longjmp errors are caught
 * and turned into SD_EFORMAT).  Paths are opened with sd_file_open: regular
 * files only, so a FIFO or a directory named like an image is refused at once
 * instead of blocking or failing obscurely.  Writing produces 8-bit gray, RGB or RGBA, and
 * 16-bit gray (used by tests and by 16-bit dataset exports).
 */
#ifndef SD_PNG_H
#define SD_PNG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sd_error.h"

/* What a PNG header says, before decoding any pixel. */
typedef struct sd_png_info {
    int width, height;
    int bit_depth; /* bits per sample as stored: 1, 2, 4, 8 or 16 */
    int channels;  /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA (palette: 3) */
    int palette;   /* 1 when the image is palette-coded */
} sd_png_info;

/* Largest width or height accepted when reading (guards against a header that
 * claims a gigantic image). */
#define SD_PNG_MAX_DIM 32768

/* Read only the header of path.  Fails (SD_EIO / SD_EFORMAT) on a missing or
 * non-PNG file. */
int sd_png_read_info(const char *path, sd_png_info *info, sd_error *err) SD_WUR;

/* Read a grayscale PNG into a newly malloc'ed w*h array of uint16 on the
 * 0..65535 scale (row-major).  *bit_depth_out (may be NULL) gets the stored
 * depth.  Colour/palette/alpha images are refused (SD_EFORMAT, message names
 * the file and what it found).  The caller frees *pix with free(). */
int sd_png_read_gray16(const char *path, uint16_t **pix, int *w, int *h, int *bit_depth_out,
                       sd_error *err) SD_WUR;

/* Same, decoding into a caller-owned buffer of exactly expect_w*expect_h
 * values; refuses a file whose size differs. */
int sd_png_read_gray16_into(const char *path, uint16_t *pix, int expect_w, int expect_h,
                            sd_error *err) SD_WUR;

/* The same three on a stream already open at the start of the file (e.g.
 * from sd_file_open with a root); path is for messages.  The stream is not
 * closed. */
int sd_png_read_info_file(FILE *f, const char *path, sd_png_info *info, sd_error *err) SD_WUR;
int sd_png_read_gray16_file(FILE *f, const char *path, uint16_t **pix, int *w, int *h,
                            int *bit_depth_out, sd_error *err) SD_WUR;
int sd_png_read_gray16_into_file(FILE *f, const char *path, uint16_t *pix, int expect_w,
                                 int expect_h, sd_error *err) SD_WUR;

/* Write an 8-bit image: channels 1 (gray), 3 (RGB) or 4 (RGBA), rows packed
 * (stride w*channels).  Written to path.tmp then renamed, so a crash never
 * leaves a half-written PNG under the final name. */
int sd_png_write(const char *path, const uint8_t *pix, int w, int h, int channels,
                 sd_error *err) SD_WUR;

/* Same, adding a tEXt "Comment" chunk (e.g. "SYNTHETIC phantom ...") so the
 * file says what it is without anything burned into the pixels. */
int sd_png_write_comment(const char *path, const uint8_t *pix, int w, int h, int channels,
                         const char *comment, sd_error *err) SD_WUR;

/* Write a 16-bit grayscale PNG. */
int sd_png_write_gray16(const char *path, const uint16_t *pix, int w, int h, sd_error *err) SD_WUR;

/* Encode an 8-bit image (channels 1, 3 or 4) into a malloc'ed PNG byte
 * string (for serving over HTTP without a file).  The caller frees *out. */
int sd_png_encode(const uint8_t *pix, int w, int h, int channels, uint8_t **out, size_t *out_len,
                  sd_error *err) SD_WUR;

#endif
