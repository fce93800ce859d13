/*
 * data_testutil.h - helpers for the data-side tests (PNG, synth, dataset,
 * detection, metrics): a scratch directory removed at exit, small file
 * writers, and a PNG writer for the colour types the engine refuses
 * (palette, gray+alpha) and for 1-bit and interlaced images.
 */
#ifndef DATA_TESTUTIL_H
#define DATA_TESTUTIL_H

#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tu_dir[256];

static void tu_cleanup(void)
{
    if (tu_dir[0] && !getenv("SD_TEST_KEEP")) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tu_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "warning: could not remove %s\n", tu_dir);
    }
}

/* Create a fresh scratch directory (under $TMPDIR or /tmp). */
static inline const char *tu_scratch(const char *tag)
{
    const char *t = getenv("TMPDIR");
    snprintf(tu_dir, sizeof tu_dir, "%s/sldd-%s-XXXXXX", t && *t ? t : "/tmp", tag);
    if (!mkdtemp(tu_dir)) {
        perror("mkdtemp");
        exit(1);
    }
    atexit(tu_cleanup);
    return tu_dir;
}

static inline void tu_path(char *buf, size_t n, const char *rel)
{
    snprintf(buf, n, "%s/%s", tu_dir, rel);
}

static inline int tu_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static inline long tu_file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/* Keep only the first keep bytes of path. */
static inline int tu_truncate(const char *path, long keep)
{
    return truncate(path, keep);
}

/* Raw libpng writer: color_type PNG_COLOR_TYPE_*, depth, interlace; rows
 * are packed as libpng expects for that type (palette: 4 entries). */
static inline int tu_write_png_raw(const char *path, int w, int h, int color_type, int depth,
                                   int interlace, const uint8_t *data, size_t rowbytes)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
        png_set_PLTE(png, info, pal, 4);
    }
    png_write_info(png, info);
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    for (int y = 0; y < h; y++)
        rows[y] = (png_bytep)(data + (size_t)y * rowbytes);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return fclose(f);
}

#endif
