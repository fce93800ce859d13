/* sd_plot.c - ROC curves, line plots and image grids as PNG (see sd_plot.h). */
#include "sd_plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_draw.h"

#define C_BG   0xFFFFFFu
#define C_AXIS 0x000000u
#define C_GRID 0xE4E4E4u
#define C_TEXT 0x000000u
#define C_NOTE 0xC07000u

static const uint32_t palette[8] = {0x1F77B4u, 0xFF7F0Eu, 0x2CA02Cu, 0xD62728u,
                                    0x9467BDu, 0x8C564Bu, 0xE377C2u, 0x7F7F7Fu};

typedef struct axes {
    int left, top, right, bottom; /* plot area in pixels */
    double xmin, xmax, ymin, ymax;
} axes;

static int px_x(const axes *a, double x)
{
    return a->left + (int)lround((x - a->xmin) / (a->xmax - a->xmin) * (a->right - a->left));
}

static int px_y(const axes *a, double y)
{
    return a->bottom - (int)lround((y - a->ymin) / (a->ymax - a->ymin) * (a->bottom - a->top));
}

/* A round tick step (1, 2 or 5 times a power of ten) giving about 5 ticks. */
static double nice_step(double range)
{
    if (!(range > 0))
        return 1;
    double raw = range / 5, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void fmt_tick(char *buf, size_t n, double v, double step)
{
    if (fabs(v) < step * 1e-9)
        v = 0;
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6)
        snprintf(buf, n, "%.2g", v);
    else
        snprintf(buf, n, "%.*f", dec, v);
}

/* Frame, grid, ticks and labels.  log_y: y values are log10 and ticks are
 * labelled as powers of ten. */
static void draw_axes(sd_canvas *c, const axes *a, double xstep, double ystep, const char *xlabel,
                      const char *ylabel, int log_y)
{
    char buf[64];
    for (double t = ceil(a->xmin / xstep - 1e-9) * xstep; t <= a->xmax + xstep * 1e-9; t += xstep) {
        int x = px_x(a, t);
        sd_draw_line(c, x, a->top, x, a->bottom, C_GRID, 1);
        sd_draw_line(c, x, a->bottom, x, a->bottom + 4, C_AXIS, 1);
        fmt_tick(buf, sizeof buf, t, xstep);
        sd_draw_text(c, x - sd_text_width(buf, 1) / 2, a->bottom + 8, buf, C_TEXT, 1);
    }
    for (double t = ceil(a->ymin / ystep - 1e-9) * ystep; t <= a->ymax + ystep * 1e-9; t += ystep) {
        int y = px_y(a, t);
        sd_draw_line(c, a->left, y, a->right, y, C_GRID, 1);
        sd_draw_line(c, a->left - 4, y, a->left, y, C_AXIS, 1);
        if (log_y)
            snprintf(buf, sizeof buf, "%.3g", pow(10, t));
        else
            fmt_tick(buf, sizeof buf, t, ystep);
        sd_draw_text(c, a->left - 8 - sd_text_width(buf, 1), y - SD_FONT_H / 2, buf, C_TEXT, 1);
    }
    sd_draw_rect(c, a->left, a->top, a->right - a->left + 1, a->bottom - a->top + 1, C_AXIS, 0);
    if (xlabel)
        sd_draw_text(c, (a->left + a->right - sd_text_width(xlabel, 1)) / 2, a->bottom + 24, xlabel,
                     C_TEXT, 1);
    if (ylabel)
        sd_draw_text_vertical(c, 8, (a->top + a->bottom + sd_text_width(ylabel, 1)) / 2, ylabel,
                              C_TEXT, 1);
}

static void draw_title(sd_canvas *c, const char *title)
{
    if (title)
        sd_draw_text(c, (c->w - sd_text_width(title, 2)) / 2, 8, title, C_TEXT, 2);
}

int sd_plot_roc_png(const char *path, const sd_roc *roc, double mark_delta, const char *title,
                    int synthetic, sd_error *err)
{
    if (!roc || roc->n < 2 || !roc->pt)
        return sd_error_set(err, SD_EINVAL, "ROC plot: empty curve");
    sd_canvas c;
    int rc = sd_canvas_init(&c, 520, 540, C_BG, err);
    if (rc)
        return rc;
    axes a = {80, 50, 480, 450, 0, 1, 0, 1};
    draw_title(&c, title ? title : "ROC");
    draw_axes(&c, &a, 0.2, 0.2, "1 - specificity", "sensitivity", 0);
    sd_draw_line_dashed(&c, px_x(&a, 0), px_y(&a, 0), px_x(&a, 1), px_y(&a, 1), 0x909090u, 4);
    for (int i = 1; i < roc->n; i++)
        sd_draw_line(&c, px_x(&a, roc->pt[i - 1].fpr), px_y(&a, roc->pt[i - 1].tpr),
                     px_x(&a, roc->pt[i].fpr), px_y(&a, roc->pt[i].tpr), palette[0], 2);
    char buf[128];
    snprintf(buf, sizeof buf, "AUC = %.4f  (%d gastritis, %d non-gastritis)", roc->auc,
             roc->positives, roc->negatives);
    sd_draw_text(&c, a.left + 10, a.bottom - 20, buf, C_TEXT, 1);
    if (isfinite(mark_delta)) {
        /* points run in order of decreasing threshold; the operating point of
         * "gastritis iff r >= delta" is the last one whose threshold is still
         * >= delta (it predicts exactly the images with r >= delta) */
        int at = -1;
        for (int i = 0; i < roc->n; i++)
            if (roc->pt[i].delta >= mark_delta)
                at = i;
        if (at >= 0) {
            int x = px_x(&a, roc->pt[at].fpr), y = px_y(&a, roc->pt[at].tpr);
            sd_draw_rect(&c, x - 4, y - 4, 9, 9, palette[3], 1);
            snprintf(buf, sizeof buf, "delta %.2f: Sen %.3f Spe %.3f", mark_delta, roc->pt[at].tpr,
                     1 - roc->pt[at].fpr);
            int tx = x + 10;
            if (tx + sd_text_width(buf, 1) > a.right - 4)
                tx = a.right - 4 - sd_text_width(buf, 1);
            sd_draw_text(&c, tx, y + 8 < a.bottom - 30 ? y + 8 : y - 16, buf, palette[3], 1);
        }
    }
    if (synthetic)
        sd_draw_text(&c, c.w - 8 - sd_text_width("SYNTHETIC DATA", 1), c.h - 14, "SYNTHETIC DATA",
                     C_NOTE, 1);
    rc = sd_canvas_write_png(&c, path, err);
    sd_canvas_free(&c);
    return rc;
}

int sd_plot_lines_png(const char *path, const char *title, const char *xlabel, const char *ylabel,
                      const double *x, int n, const double *const *ys, const char *const *names,
                      int nseries, int log_y, sd_error *err)
{
    if (!x || n < 1 || !ys || nseries < 1)
        return sd_error_set(err, SD_EINVAL, "line plot: no data");
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            continue;
        xmin = fmin(xmin, x[i]);
        xmax = fmax(xmax, x[i]);
        for (int s = 0; s < nseries; s++) {
            double v = ys[s][i];
            if (log_y)
                v = v > 0 ? log10(v) : NAN;
            if (isfinite(v)) {
                ymin = fmin(ymin, v);
                ymax = fmax(ymax, v);
            }
        }
    }
    if (!isfinite(xmin) || !isfinite(ymin))
        return sd_error_set(err, SD_EINVAL, "line plot: no finite points");
    if (xmax == xmin) {
        xmin -= 0.5;
        xmax += 0.5;
    }
    if (ymax == ymin) {
        double d = fabs(ymin) > 0 ? fabs(ymin) * 0.1 : 0.5;
        ymin -= d;
        ymax += d;
    }
    double xstep = nice_step(xmax - xmin), ystep = nice_step(ymax - ymin);
    if (log_y && ymax - ymin > 1.5 && ystep < 1)
        ystep = 1; /* whole decades read better than 3.16, 0.316, ... */
    /* widen the y range to whole ticks so the curve does not touch the frame */
    ymin = floor(ymin / ystep) * ystep;
    ymax = ceil(ymax / ystep) * ystep;
    sd_canvas c;
    int rc = sd_canvas_init(&c, 800, 500, C_BG, err);
    if (rc)
        return rc;
    axes a = {80, 44, 780, 440, xmin, xmax, ymin, ymax};
    draw_title(&c, title);
    draw_axes(&c, &a, xstep, ystep, xlabel, ylabel, log_y);
    for (int s = 0; s < nseries; s++) {
        uint32_t col = palette[s % 8];
        int have = 0, lx = 0, ly = 0;
        for (int i = 0; i < n; i++) {
            double v = ys[s][i];
            if (log_y)
                v = v > 0 ? log10(v) : NAN;
            if (!isfinite(v) || !isfinite(x[i])) {
                have = 0;
                continue;
            }
            int px = px_x(&a, x[i]), py = px_y(&a, v);
            if (have)
                sd_draw_line(&c, lx, ly, px, py, col, 2);
            else
                sd_draw_rect(&c, px - 1, py - 1, 3, 3, col, 1);
            lx = px;
            ly = py;
            have = 1;
        }
    }
    if (names) {
        int wmax = 0;
        for (int s = 0; s < nseries; s++)
            if (names[s] && sd_text_width(names[s], 1) > wmax)
                wmax = sd_text_width(names[s], 1);
        int bx = a.right - wmax - 40, by = a.top + 8;
        sd_draw_rect(&c, bx - 6, by - 6, wmax + 40, nseries * 14 + 8, C_BG, 1);
        sd_draw_rect(&c, bx - 6, by - 6, wmax + 40, nseries * 14 + 8, 0xA0A0A0u, 0);
        for (int s = 0; s < nseries; s++) {
            sd_draw_line(&c, bx, by + 14 * s + 3, bx + 20, by + 14 * s + 3, palette[s % 8], 2);
            if (names[s])
                sd_draw_text(&c, bx + 26, by + 14 * s, names[s], C_TEXT, 1);
        }
    }
    rc = sd_canvas_write_png(&c, path, err);
    sd_canvas_free(&c);
    return rc;
}

int sd_plot_image_grid_png(const char *path, const sd_real *tiles, int n, int h, int w, int cols,
                           int zoom, const char *const *captions, const char *title, sd_error *err)
{
    if (!tiles || n < 1 || h < 1 || w < 1)
        return sd_error_set(err, SD_EINVAL, "image grid: no tiles");
    if (cols < 1)
        cols = n < 8 ? n : 8;
    if (zoom < 1)
        zoom = w >= 128 ? 1 : (128 + w - 1) / w;
    int rows = (n + cols - 1) / cols, pad = 10;
    int cap_w = 0, cap_h = 0;
    for (int i = 0; captions && i < n; i++)
        if (captions[i]) {
            int tw = sd_text_width(captions[i], 1), th = sd_text_height(captions[i], 1);
            cap_w = tw > cap_w ? tw : cap_w;
            cap_h = th > cap_h ? th : cap_h;
        }
    /* captions wider than their tile get a wider gap, so that one tile's
     * caption does not read on into the next one's */
    int inner = w * zoom > cap_w ? w * zoom : cap_w;
    int cell_w = inner + (cap_w > w * zoom ? 3 * pad : pad);
    int cell_h = h * zoom + (cap_h ? cap_h + 6 : 0) + pad;
    int title_h = title ? 2 * SD_FONT_LINE + 8 : 0;
    int cw = cols * cell_w + pad, ch = title_h + rows * cell_h + pad;
    if (title && sd_text_width(title, 2) + 2 * pad > cw)
        cw = sd_text_width(title, 2) + 2 * pad;
    sd_canvas c;
    int rc = sd_canvas_init(&c, cw, ch, C_BG, err);
    if (rc)
        return rc;
    uint8_t *g = malloc((size_t)h * (size_t)w);
    if (!g) {
        sd_canvas_free(&c);
        return sd_error_set(err, SD_ENOMEM, "image grid: out of memory");
    }
    draw_title(&c, title);
    for (int i = 0; i < n; i++) {
        const sd_real *t = tiles + (size_t)i * h * w;
        double lo = INFINITY, hi = -INFINITY;
        for (int p = 0; p < h * w; p++)
            if (isfinite(t[p])) {
                lo = fmin(lo, t[p]);
                hi = fmax(hi, t[p]);
            }
        double sc = hi > lo ? 255.0 / (hi - lo) : 0;
        for (int p = 0; p < h * w; p++)
            g[p] = isfinite(t[p]) ? (uint8_t)lround((t[p] - lo) * sc) : 0;
        int x0 = pad + (i % cols) * cell_w, y0 = title_h + pad + (i / cols) * cell_h;
        int ix = x0 + (inner - w * zoom) / 2;
        sd_draw_gray(&c, ix, y0, g, w, h, zoom);
        sd_draw_rect(&c, ix - 1, y0 - 1, w * zoom + 2, h * zoom + 2, 0x808080u, 0);
        if (captions && captions[i])
            sd_draw_text(&c, x0, y0 + h * zoom + 5, captions[i], C_TEXT, 1);
    }
    free(g);
    rc = sd_canvas_write_png(&c, path, err);
    sd_canvas_free(&c);
    return rc;
}
