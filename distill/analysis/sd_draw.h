/*
 * sd_draw.h - a small RGB canvas for the pictures the engine writes
 * (heat maps, ROC curves, loss curves, image grids).
 *
 * It has a built-in 5x8 bitmap font for printable ASCII (32..126) so that
 * plots carry their own labels without any font library.  Each glyph sits in
 * a 6x10 cell (one column and two rows of spacing) at scale 1; text can be
 * drawn at any integer scale.  Characters outside 32..126 draw as '?'.
 * Colours are 0xRRGGBB.  Every drawing call clips to the canvas.
 */
#ifndef SD_DRAW_H
#define SD_DRAW_H

#include <stdint.h>

#include "sd_error.h"

#define SD_FONT_W       5  /* glyph width in pixels at scale 1 */
#define SD_FONT_H       8  /* glyph height including descenders */
#define SD_FONT_ADVANCE 6  /* horizontal advance per character */
#define SD_FONT_LINE    10 /* vertical advance per line of text */

typedef struct sd_canvas {
    int w, h;
    uint8_t *rgb; /* w*h*3, row-major */
} sd_canvas;

/* Allocate a w x h canvas filled with bg.  Free with sd_canvas_free. */
int sd_canvas_init(sd_canvas *c, int w, int h, uint32_t bg, sd_error *err) SD_WUR;
void sd_canvas_free(sd_canvas *c); /* accepts a zeroed or freed canvas */
int sd_canvas_write_png(const sd_canvas *c, const char *path, sd_error *err) SD_WUR;

void sd_draw_pixel(sd_canvas *c, int x, int y, uint32_t color);
/* Blend color over the pixel with opacity alpha in [0,1]. */
void sd_draw_pixel_blend(sd_canvas *c, int x, int y, uint32_t color, double alpha);
/* Line from (x0,y0) to (x1,y1) inclusive, thickness >= 1 pixels (square pen). */
void sd_draw_line(sd_canvas *c, int x0, int y0, int x1, int y1, uint32_t color, int thickness);
/* Same with dashes of `dash` pixels on and off. */
void sd_draw_line_dashed(sd_canvas *c, int x0, int y0, int x1, int y1, uint32_t color, int dash);
/* Rectangle outline of the given thickness (inside the box) or, with fill,
 * a solid box; the box spans [x, x+w) x [y, y+h). */
void sd_draw_rect(sd_canvas *c, int x, int y, int w, int h, uint32_t color, int fill);
void sd_draw_rect_blend(sd_canvas *c, int x, int y, int w, int h, uint32_t color, double alpha);

/* Draw text with its top-left corner at (x,y); '\n' starts a new line.
 * Returns the width in pixels of the widest line drawn. */
int sd_draw_text(sd_canvas *c, int x, int y, const char *text, uint32_t color, int scale);
/* Text drawn vertically, reading bottom to top (y axis labels); (x,y) is the
 * bottom-left corner of the rotated text. */
void sd_draw_text_vertical(sd_canvas *c, int x, int y, const char *text, uint32_t color, int scale);
/* Size of text in pixels at the given scale (widest line, number of lines). */
int sd_text_width(const char *text, int scale);
int sd_text_height(const char *text, int scale);

/* Paint an 8-bit gray image into the canvas at (x,y), each source pixel
 * becoming a scale x scale block (scale >= 1). */
void sd_draw_gray(sd_canvas *c, int x, int y, const uint8_t *gray, int w, int h, int scale);

#endif
