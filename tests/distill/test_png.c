/*
 * test_png.c - PNG reading/writing (sd_png) and the canvas and font
 * (sd_draw): round trips at 8 and 16 bits, 1-bit and interlaced input,
 * every refused kind of file with its message, in-memory encoding, text
 * chunks, and text/line drawing.
 */
#include <stdint.h>
#include <string.h>

#include "data_testutil.h"
#include "sd_draw.h"
#include "sd_png.h"
#include "../sd_test.h"

static int contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

static void test_roundtrip(void)
{
    char path[512];
    sd_error e = {0};
    enum { W = 37, H = 23 };
    uint8_t g8[W * H];
    uint16_t g16[W * H];
    for (int i = 0; i < W * H; i++) {
        g8[i] = (uint8_t)(i * 7 + 3);
        g16[i] = (uint16_t)(i * 2654435761u >> 16);
    }
    tu_path(path, sizeof path, "g8.png");
    CHECK(sd_png_write(path, g8, W, H, 1, &e) == 0);
    sd_png_info info;
    CHECK(sd_png_read_info(path, &info, &e) == 0);
    CHECK(info.width == W && info.height == H && info.bit_depth == 8 && info.channels == 1);
    uint16_t *pix = NULL;
    int w = 0, h = 0, depth = 0;
    CHECK(sd_png_read_gray16(path, &pix, &w, &h, &depth, &e) == 0);
    CHECK(w == W && h == H && depth == 8);
    int ok = 1;
    for (int i = 0; pix && i < W * H; i++)
        ok &= pix[i] == g8[i] * 257; /* 255 -> 65535 */
    CHECK(ok);
    free(pix);

    tu_path(path, sizeof path, "g16.png");
    CHECK(sd_png_write_gray16(path, g16, W, H, &e) == 0);
    CHECK(sd_png_read_gray16(path, &pix, &w, &h, &depth, &e) == 0);
    CHECK(depth == 16);
    ok = 1;
    for (int i = 0; pix && i < W * H; i++)
        ok &= pix[i] == g16[i];
    CHECK(ok);
    free(pix);

    /* into a caller buffer, and its size check */
    uint16_t buf[W * H];
    CHECK(sd_png_read_gray16_into(path, buf, W, H, &e) == 0);
    CHECK(buf[5] == g16[5]);
    CHECK(sd_png_read_gray16_into(path, buf, W + 1, H, &e) == SD_EFORMAT);
    CHECK(contains(e.msg, "image is 37x23, expected 38x23"));
}

static void test_low_depth_and_interlace(void)
{
    char path[512];
    sd_error e = {0};
    /* 1-bit: 8 pixels per byte, msb first; 1 must read as 65535 */
    uint8_t bits[2 * 3] = {0xA0, 0x00, 0x0F, 0x80, 0xFF, 0xFF};
    tu_path(path, sizeof path, "bits.png");
    CHECK(tu_write_png_raw(path, 9, 3, PNG_COLOR_TYPE_GRAY, 1, 0, bits, 2) == 0);
    uint16_t *pix = NULL;
    int w, h, depth;
    CHECK(sd_png_read_gray16(path, &pix, &w, &h, &depth, &e) == 0);
    CHECK(w == 9 && h == 3 && depth == 1);
    if (pix) {
        CHECK(pix[0] == 65535 && pix[1] == 0 && pix[2] == 65535 && pix[3] == 0);
        CHECK(pix[9 + 4] == 65535 && pix[9 + 3] == 0 && pix[9 + 8] == 65535);
        CHECK(pix[18 + 8] == 65535);
    }
    free(pix);

    /* Adam7 interlaced 8-bit */
    enum { W = 19, H = 13 };
    uint8_t g[W * H];
    for (int i = 0; i < W * H; i++)
        g[i] = (uint8_t)(i * 13);
    tu_path(path, sizeof path, "inter.png");
    CHECK(tu_write_png_raw(path, W, H, PNG_COLOR_TYPE_GRAY, 8, 1, g, W) == 0);
    CHECK(sd_png_read_gray16(path, &pix, &w, &h, &depth, &e) == 0);
    int ok = pix != NULL;
    for (int i = 0; ok && i < W * H; i++)
        ok &= pix[i] == g[i] * 257;
    CHECK(ok);
    free(pix);
}

static void expect_refused(const char *name, const char *what)
{
    char path[512];
    tu_path(path, sizeof path, name);
    sd_error e = {0};
    uint16_t *pix = (uint16_t *)1;
    int w, h;
    int rc = sd_png_read_gray16(path, &pix, &w, &h, NULL, &e);
    CHECKF(rc < 0, "%s accepted", name);
    CHECK(pix == NULL);
    CHECKF(contains(e.msg, path), "message does not name the file: %s", e.msg);
    CHECKF(contains(e.msg, what), "expected '%s' in: %s", what, e.msg);
}

static void test_refused(void)
{
    char path[512];
    sd_error e = {0};
    uint8_t rgb[4 * 4 * 4];
    memset(rgb, 100, sizeof rgb);
    tu_path(path, sizeof path, "rgb.png");
    CHECK(sd_png_write(path, rgb, 4, 4, 3, &e) == 0);
    expect_refused("rgb.png", "RGB colour image");
    tu_path(path, sizeof path, "rgba.png");
    CHECK(sd_png_write(path, rgb, 4, 4, 4, &e) == 0);
    expect_refused("rgba.png", "RGBA colour image");

    uint8_t idx[4 * 4] = {0, 1, 2, 3};
    tu_path(path, sizeof path, "pal.png");
    CHECK(tu_write_png_raw(path, 4, 4, PNG_COLOR_TYPE_PALETTE, 8, 0, idx, 4) == 0);
    expect_refused("pal.png", "palette");
    uint8_t ga[4 * 4 * 2] = {0};
    tu_path(path, sizeof path, "ga.png");
    CHECK(tu_write_png_raw(path, 4, 4, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, ga, 8) == 0);
    expect_refused("ga.png", "grayscale with alpha");

    /* truncated in the middle of the pixel data, and just before IEND */
    enum { W = 200, H = 200 };
    static uint8_t noise[W * H];
    uint32_t s = 1;
    for (int i = 0; i < W * H; i++) {
        s = s * 1664525u + 1013904223u;
        noise[i] = (uint8_t)(s >> 24);
    }
    tu_path(path, sizeof path, "trunc.png");
    CHECK(sd_png_write(path, noise, W, H, 1, &e) == 0);
    long full = tu_file_size(path);
    CHECK(full > 1000);
    CHECK(tu_truncate(path, full / 2) == 0);
    expect_refused("trunc.png", "file is truncated");
    tu_path(path, sizeof path, "trunc2.png");
    CHECK(sd_png_write(path, noise, W, H, 1, &e) == 0);
    CHECK(tu_truncate(path, full - 12) == 0); /* IEND chunk gone */
    expect_refused("trunc2.png", "truncated");

    /* a flipped byte in the image data: CRC error */
    tu_path(path, sizeof path, "crc.png");
    CHECK(sd_png_write(path, noise, W, H, 1, &e) == 0);
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (f) {
        fseek(f, full / 2, SEEK_SET);
        int c = fgetc(f);
        fseek(f, full / 2, SEEK_SET);
        fputc(c ^ 0x55, f);
        fclose(f);
    }
    expect_refused("crc.png", "corrupt or unreadable PNG");

    tu_path(path, sizeof path, "text.png");
    CHECK(tu_write_text(path, "this is not an image\n") == 0);
    expect_refused("text.png", "not a PNG file");
    tu_path(path, sizeof path, "empty.png");
    CHECK(tu_write_text(path, "") == 0);
    expect_refused("empty.png", "empty file");
    expect_refused("does-not-exist.png", "cannot open");

    /* header only: a truncated header is refused too */
    tu_path(path, sizeof path, "hdr.png");
    CHECK(sd_png_write(path, noise, W, H, 1, &e) == 0);
    CHECK(tu_truncate(path, 20) == 0);
    sd_png_info info;
    CHECK(sd_png_read_info(path, &info, &e) == SD_EFORMAT);
    CHECK(contains(e.msg, "hdr.png"));

    /* bad writer arguments */
    CHECK(sd_png_write(path, noise, 0, 4, 1, &e) == SD_EINVAL);
    CHECK(sd_png_write(path, noise, 4, 4, 2, &e) == SD_EINVAL);
}

static void test_encode_and_comment(void)
{
    char path[512];
    sd_error e = {0};
    uint8_t g[16 * 8];
    for (int i = 0; i < 16 * 8; i++)
        g[i] = (uint8_t)i;
    uint8_t *png = NULL;
    size_t len = 0;
    CHECK(sd_png_encode(g, 16, 8, 1, &png, &len, &e) == 0);
    CHECK(png && len > 8 && !memcmp(png, "\x89PNG\r\n\x1a\n", 8));
    tu_path(path, sizeof path, "enc.png");
    FILE *f = fopen(path, "wb");
    if (f && png) {
        fwrite(png, 1, len, f);
        fclose(f);
    }
    free(png);
    uint16_t *pix = NULL;
    int w, h;
    CHECK(sd_png_read_gray16(path, &pix, &w, &h, NULL, &e) == 0);
    CHECK(pix && w == 16 && h == 8 && pix[100] == 100 * 257);
    free(pix);

    tu_path(path, sizeof path, "comment.png");
    CHECK(sd_png_write_comment(path, g, 16, 8, 1, "SYNTHETIC phantom", &e) == 0);
    f = fopen(path, "rb");
    char buf[4096];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    int found = 0;
    for (size_t i = 0; i + 17 <= n; i++)
        found |= !memcmp(buf + i, "SYNTHETIC phantom", 17);
    CHECK(found);
    /* no temp file left behind */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);
}

static int lit(const sd_canvas *c, int x, int y)
{
    const uint8_t *p = c->rgb + ((size_t)y * c->w + x) * 3;
    return p[0] || p[1] || p[2];
}

static void test_draw(void)
{
    sd_error e = {0};
    sd_canvas c;
    CHECK(sd_canvas_init(&c, 64, 32, 0x000000, &e) == 0);
    CHECK(sd_text_width("A", 1) == 5);
    CHECK(sd_text_width("AB", 1) == 11);
    CHECK(sd_text_width("AB\nABC", 2) == 34);
    CHECK(sd_text_height("x", 1) == 8 && sd_text_height("x\ny", 1) == 18);
    /* 'I' is 0x00,0x41,0x7F,0x41,0x00: its middle column is fully lit */
    sd_draw_text(&c, 0, 0, "I", 0xFFFFFF, 1);
    int col = 1;
    for (int y = 0; y < 7; y++)
        col &= lit(&c, 2, y);
    CHECK(col);
    CHECK(!lit(&c, 0, 3) && !lit(&c, 4, 3) && lit(&c, 1, 0) && lit(&c, 3, 6));
    /* clipping: nothing outside the canvas is touched (ASan would see it) */
    sd_draw_text(&c, 60, 28, "clip", 0xFF0000, 3);
    sd_draw_line(&c, -10, -10, 100, 50, 0x00FF00, 3);
    sd_draw_rect(&c, -5, -5, 100, 100, 0x0000FF, 0);
    sd_draw_rect_blend(&c, 10, 10, 5, 5, 0xFFFFFF, 0.5);
    /* a horizontal line lights exactly its pixels */
    sd_canvas d;
    CHECK(sd_canvas_init(&d, 10, 3, 0, &e) == 0);
    sd_draw_line(&d, 2, 1, 7, 1, 0xFFFFFF, 1);
    int ok = 1;
    for (int x = 0; x < 10; x++)
        ok &= lit(&d, x, 1) == (x >= 2 && x <= 7) && !lit(&d, x, 0) && !lit(&d, x, 2);
    CHECK(ok);
    /* blending halfway from black to white */
    sd_draw_pixel_blend(&d, 0, 0, 0xFFFFFF, 0.5);
    CHECK(d.rgb[0] == 128 && d.rgb[1] == 128);
    char path[512];
    tu_path(path, sizeof path, "canvas.png");
    CHECK(sd_canvas_write_png(&c, path, &e) == 0);
    sd_png_info info;
    CHECK(sd_png_read_info(path, &info, &e) == 0 && info.channels == 3 && info.width == 64);
    sd_canvas_free(&c);
    sd_canvas_free(&d);
    sd_canvas_free(&d); /* twice is fine */
    /* every printable character renders something except space */
    CHECK(sd_canvas_init(&c, 600, 12, 0, &e) == 0);
    int blank = 0;
    for (int ch = 33; ch <= 126; ch++) {
        char s[2] = {(char)ch, 0};
        sd_draw_rect(&c, 0, 0, 10, 12, 0, 1);
        sd_draw_text(&c, 0, 0, s, 0xFFFFFF, 1);
        int any = 0;
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 5; x++)
                any |= lit(&c, x, y);
        blank += !any;
    }
    CHECK(blank == 0);
    sd_canvas_free(&c);
}

int main(void)
{
    tu_scratch("png");
    test_roundtrip();
    test_low_depth_and_interlace();
    test_refused();
    test_encode_and_comment();
    test_draw();
    return sd_test_finish();
}
