/*
 * sd_draw.c - RGB canvas, primitives and the built-in bitmap font
 * (see sd_draw.h).
 */
#include "sd_draw.h"

#include <stdlib.h>
#include <string.h>

#include "sd_png.h"

/* 5x8 glyphs for ASCII 32..126, one byte per column, left to right; bit 0 is
 * the top row and bit 7 the lowest (used only by descenders: g j p q y ,).
 * This is the classic public-domain 5x7 LCD character set. */
static const uint8_t font5x8[95][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, /*   */
    {0x00, 0x00, 0x5F, 0x00, 0x00}, /* ! */
    {0x00, 0x07, 0x00, 0x07, 0x00}, /* " */
    {0x14, 0x7F, 0x14, 0x7F, 0x14}, /* # */
    {0x24, 0x2A, 0x7F, 0x2A, 0x12}, /* $ */
    {0x23, 0x13, 0x08, 0x64, 0x62}, /* % */
    {0x36, 0x49, 0x56, 0x20, 0x50}, /* & */
    {0x00, 0x08, 0x07, 0x03, 0x00}, /* ' */
    {0x00, 0x1C, 0x22, 0x41, 0x00}, /* ( */
    {0x00, 0x41, 0x22, 0x1C, 0x00}, /* ) */
    {0x2A, 0x1C, 0x7F, 0x1C, 0x2A}, /* * */
    {0x08, 0x08, 0x3E, 0x08, 0x08}, /* + */
    {0x00, 0x80, 0x70, 0x30, 0x00}, /* , */
    {0x08, 0x08, 0x08, 0x08, 0x08}, /* - */
    {0x00, 0x00, 0x60, 0x60, 0x00}, /* . */
    {0x20, 0x10, 0x08, 0x04, 0x02}, /* / */
    {0x3E, 0x51, 0x49, 0x45, 0x3E}, /* 0 */
    {0x00, 0x42, 0x7F, 0x40, 0x00}, /* 1 */
    {0x72, 0x49, 0x49, 0x49, 0x46}, /* 2 */
    {0x21, 0x41, 0x49, 0x4D, 0x33}, /* 3 */
    {0x18, 0x14, 0x12, 0x7F, 0x10}, /* 4 */
    {0x27, 0x45, 0x45, 0x45, 0x39}, /* 5 */
    {0x3C, 0x4A, 0x49, 0x49, 0x31}, /* 6 */
    {0x41, 0x21, 0x11, 0x09, 0x07}, /* 7 */
    {0x36, 0x49, 0x49, 0x49, 0x36}, /* 8 */
    {0x46, 0x49, 0x49, 0x29, 0x1E}, /* 9 */
    {0x00, 0x00, 0x14, 0x00, 0x00}, /* : */
    {0x00, 0x40, 0x34, 0x00, 0x00}, /* ; */
    {0x00, 0x08, 0x14, 0x22, 0x41}, /* < */
    {0x14, 0x14, 0x14, 0x14, 0x14}, /* = */
    {0x00, 0x41, 0x22, 0x14, 0x08}, /* > */
    {0x02, 0x01, 0x59, 0x09, 0x06}, /* ? */
    {0x3E, 0x41, 0x5D, 0x59, 0x4E}, /* @ */
    {0x7C, 0x12, 0x11, 0x12, 0x7C}, /* A */
    {0x7F, 0x49, 0x49, 0x49, 0x36}, /* B */
    {0x3E, 0x41, 0x41, 0x41, 0x22}, /* C */
    {0x7F, 0x41, 0x41, 0x41, 0x3E}, /* D */
    {0x7F, 0x49, 0x49, 0x49, 0x41}, /* E */
    {0x7F, 0x09, 0x09, 0x09, 0x01}, /* F */
    {0x3E, 0x41, 0x41, 0x51, 0x73}, /* G */
    {0x7F, 0x08, 0x08, 0x08, 0x7F}, /* H */
    {0x00, 0x41, 0x7F, 0x41, 0x00}, /* I */
    {0x20, 0x40, 0x41, 0x3F, 0x01}, /* J */
    {0x7F, 0x08, 0x14, 0x22, 0x41}, /* K */
    {0x7F, 0x40, 0x40, 0x40, 0x40}, /* L */
    {0x7F, 0x02, 0x1C, 0x02, 0x7F}, /* M */
    {0x7F, 0x04, 0x08, 0x10, 0x7F}, /* N */
    {0x3E, 0x41, 0x41, 0x41, 0x3E}, /* O */
    {0x7F, 0x09, 0x09, 0x09, 0x06}, /* P */
    {0x3E, 0x41, 0x51, 0x21, 0x5E}, /* Q */
    {0x7F, 0x09, 0x19, 0x29, 0x46}, /* R */
    {0x26, 0x49, 0x49, 0x49, 0x32}, /* S */
    {0x03, 0x01, 0x7F, 0x01, 0x03}, /* T */
    {0x3F, 0x40, 0x40, 0x40, 0x3F}, /* U */
    {0x1F, 0x20, 0x40, 0x20, 0x1F}, /* V */
    {0x3F, 0x40, 0x38, 0x40, 0x3F}, /* W */
    {0x63, 0x14, 0x08, 0x14, 0x63}, /* X */
    {0x03, 0x04, 0x78, 0x04, 0x03}, /* Y */
    {0x61, 0x59, 0x49, 0x4D, 0x43}, /* Z */
    {0x00, 0x7F, 0x41, 0x41, 0x41}, /* [ */
    {0x02, 0x04, 0x08, 0x10, 0x20}, /* \ */
    {0x00, 0x41, 0x41, 0x41, 0x7F}, /* ] */
    {0x04, 0x02, 0x01, 0x02, 0x04}, /* ^ */
    {0x40, 0x40, 0x40, 0x40, 0x40}, /* _ */
    {0x00, 0x03, 0x07, 0x08, 0x00}, /* ` */
    {0x20, 0x54, 0x54, 0x78, 0x40}, /* a */
    {0x7F, 0x28, 0x44, 0x44, 0x38}, /* b */
    {0x38, 0x44, 0x44, 0x44, 0x28}, /* c */
    {0x38, 0x44, 0x44, 0x28, 0x7F}, /* d */
    {0x38, 0x54, 0x54, 0x54, 0x18}, /* e */
    {0x00, 0x08, 0x7E, 0x09, 0x02}, /* f */
    {0x18, 0xA4, 0xA4, 0x9C, 0x78}, /* g */
    {0x7F, 0x08, 0x04, 0x04, 0x78}, /* h */
    {0x00, 0x44, 0x7D, 0x40, 0x00}, /* i */
    {0x20, 0x40, 0x40, 0x3D, 0x00}, /* j */
    {0x7F, 0x10, 0x28, 0x44, 0x00}, /* k */
    {0x00, 0x41, 0x7F, 0x40, 0x00}, /* l */
    {0x7C, 0x04, 0x78, 0x04, 0x78}, /* m */
    {0x7C, 0x08, 0x04, 0x04, 0x78}, /* n */
    {0x38, 0x44, 0x44, 0x44, 0x38}, /* o */
    {0xFC, 0x18, 0x24, 0x24, 0x18}, /* p */
    {0x18, 0x24, 0x24, 0x18, 0xFC}, /* q */
    {0x7C, 0x08, 0x04, 0x04, 0x08}, /* r */
    {0x48, 0x54, 0x54, 0x54, 0x24}, /* s */
    {0x04, 0x04, 0x3F, 0x44, 0x24}, /* t */
    {0x3C, 0x40, 0x40, 0x20, 0x7C}, /* u */
    {0x1C, 0x20, 0x40, 0x20, 0x1C}, /* v */
    {0x3C, 0x40, 0x30, 0x40, 0x3C}, /* w */
    {0x44, 0x28, 0x10, 0x28, 0x44}, /* x */
    {0x9C, 0xA0, 0xA0, 0xA0, 0x7C}, /* y */
    {0x44, 0x64, 0x54, 0x4C, 0x44}, /* z */
    {0x00, 0x08, 0x36, 0x41, 0x00}, /* { */
    {0x00, 0x00, 0x7F, 0x00, 0x00}, /* | */
    {0x00, 0x41, 0x36, 0x08, 0x00}, /* } */
    {0x08, 0x04, 0x08, 0x10, 0x08}, /* ~ */
};

int sd_canvas_init(sd_canvas *c, int w, int h, uint32_t bg, sd_error *err)
{
    c->w = c->h = 0;
    c->rgb = NULL;
    if (w <= 0 || h <= 0 || w > 16384 || h > 16384)
        return sd_error_set(err, SD_EINVAL, "canvas size %dx%d out of range", w, h);
    c->rgb = malloc((size_t)w * (size_t)h * 3);
    if (!c->rgb)
        return sd_error_set(err, SD_ENOMEM, "out of memory for a %dx%d canvas", w, h);
    c->w = w;
    c->h = h;
    sd_draw_rect(c, 0, 0, w, h, bg, 1);
    return 0;
}

void sd_canvas_free(sd_canvas *c)
{
    if (!c)
        return;
    free(c->rgb);
    c->rgb = NULL;
    c->w = c->h = 0;
}

int sd_canvas_write_png(const sd_canvas *c, const char *path, sd_error *err)
{
    return sd_png_write(path, c->rgb, c->w, c->h, 3, err);
}

void sd_draw_pixel(sd_canvas *c, int x, int y, uint32_t color)
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h)
        return;
    uint8_t *p = c->rgb + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    p[0] = (uint8_t)(color >> 16);
    p[1] = (uint8_t)(color >> 8);
    p[2] = (uint8_t)color;
}

void sd_draw_pixel_blend(sd_canvas *c, int x, int y, uint32_t color, double alpha)
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h)
        return;
    if (alpha <= 0)
        return;
    if (alpha > 1)
        alpha = 1;
    uint8_t *p = c->rgb + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    const int comp[3] = {(int)((color >> 16) & 0xff), (int)((color >> 8) & 0xff),
                         (int)(color & 0xff)};
    for (int i = 0; i < 3; i++)
        p[i] = (uint8_t)(p[i] + alpha * (comp[i] - p[i]) + 0.5);
}

static void pen(sd_canvas *c, int x, int y, uint32_t color, int thickness)
{
    int lo = -(thickness - 1) / 2;
    for (int dy = lo; dy < lo + thickness; dy++)
        for (int dx = lo; dx < lo + thickness; dx++)
            sd_draw_pixel(c, x + dx, y + dy, color);
}

/* Bresenham; dash > 0 draws `dash` pixels on and `dash` off. */
static void line(sd_canvas *c, int x0, int y0, int x1, int y1, uint32_t color, int thickness,
                 int dash)
{
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    int dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int e = dx + dy, step = 0;
    if (thickness < 1)
        thickness = 1;
    for (;;) {
        if (dash <= 0 || (step / dash) % 2 == 0)
            pen(c, x0, y0, color, thickness);
        step++;
        if (x0 == x1 && y0 == y1)
            break;
        int e2 = 2 * e;
        if (e2 >= dy) {
            e += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            e += dx;
            y0 += sy;
        }
    }
}

void sd_draw_line(sd_canvas *c, int x0, int y0, int x1, int y1, uint32_t color, int thickness)
{
    line(c, x0, y0, x1, y1, color, thickness, 0);
}

void sd_draw_line_dashed(sd_canvas *c, int x0, int y0, int x1, int y1, uint32_t color, int dash)
{
    line(c, x0, y0, x1, y1, color, 1, dash < 1 ? 1 : dash);
}

void sd_draw_rect(sd_canvas *c, int x, int y, int w, int h, uint32_t color, int fill)
{
    if (w <= 0 || h <= 0)
        return;
    if (!fill) {
        for (int i = 0; i < w; i++) {
            sd_draw_pixel(c, x + i, y, color);
            sd_draw_pixel(c, x + i, y + h - 1, color);
        }
        for (int j = 0; j < h; j++) {
            sd_draw_pixel(c, x, y + j, color);
            sd_draw_pixel(c, x + w - 1, y + j, color);
        }
        return;
    }
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + w > c->w ? c->w : x + w, y1 = y + h > c->h ? c->h : y + h;
    for (int j = y0; j < y1; j++)
        for (int i = x0; i < x1; i++)
            sd_draw_pixel(c, i, j, color);
}

void sd_draw_rect_blend(sd_canvas *c, int x, int y, int w, int h, uint32_t color, double alpha)
{
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + w > c->w ? c->w : x + w, y1 = y + h > c->h ? c->h : y + h;
    for (int j = y0; j < y1; j++)
        for (int i = x0; i < x1; i++)
            sd_draw_pixel_blend(c, i, j, color, alpha);
}

static const uint8_t *glyph(unsigned char ch)
{
    if (ch < 32 || ch > 126)
        ch = '?';
    return font5x8[ch - 32];
}

/* vertical: rotate 90 degrees counter-clockwise about (x,y). */
static void draw_char(sd_canvas *c, int x, int y, unsigned char ch, uint32_t color, int scale,
                      int vertical)
{
    const uint8_t *g = glyph(ch);
    for (int col = 0; col < SD_FONT_W; col++)
        for (int row = 0; row < SD_FONT_H; row++) {
            if (!(g[col] >> row & 1))
                continue;
            for (int a = 0; a < scale; a++)
                for (int b = 0; b < scale; b++) {
                    int px = col * scale + a, py = row * scale + b;
                    if (vertical)
                        sd_draw_pixel(c, x + py, y - px, color);
                    else
                        sd_draw_pixel(c, x + px, y + py, color);
                }
        }
}

int sd_draw_text(sd_canvas *c, int x, int y, const char *text, uint32_t color, int scale)
{
    if (scale < 1)
        scale = 1;
    int cx = x, cy = y, widest = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            cy += SD_FONT_LINE * scale;
            cx = x;
            continue;
        }
        draw_char(c, cx, cy, (unsigned char)*p, color, scale, 0);
        cx += SD_FONT_ADVANCE * scale;
        if (cx - x > widest)
            widest = cx - x;
    }
    return widest;
}

void sd_draw_text_vertical(sd_canvas *c, int x, int y, const char *text, uint32_t color, int scale)
{
    if (scale < 1)
        scale = 1;
    int cy = y;
    for (const char *p = text; *p && *p != '\n'; p++) {
        draw_char(c, x, cy, (unsigned char)*p, color, scale, 1);
        cy -= SD_FONT_ADVANCE * scale;
    }
}

int sd_text_width(const char *text, int scale)
{
    int widest = 0, cur = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            cur = 0;
            continue;
        }
        cur++;
        if (cur > widest)
            widest = cur;
    }
    /* The last column of spacing is not part of the visible text. */
    return widest ? (widest * SD_FONT_ADVANCE - 1) * (scale < 1 ? 1 : scale) : 0;
}

int sd_text_height(const char *text, int scale)
{
    int lines = 1;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    return ((lines - 1) * SD_FONT_LINE + SD_FONT_H) * (scale < 1 ? 1 : scale);
}

void sd_draw_gray(sd_canvas *c, int x, int y, const uint8_t *gray, int w, int h, int scale)
{
    if (scale < 1)
        scale = 1;
    for (int j = 0; j < h * scale; j++) {
        int py = y + j;
        if (py < 0 || py >= c->h)
            continue;
        const uint8_t *src = gray + (size_t)(j / scale) * (size_t)w;
        for (int i = 0; i < w * scale; i++) {
            int px = x + i;
            if (px < 0 || px >= c->w)
                continue;
            uint8_t v = src[i / scale];
            uint8_t *p = c->rgb + ((size_t)py * (size_t)c->w + (size_t)px) * 3;
            p[0] = p[1] = p[2] = v;
        }
    }
}
