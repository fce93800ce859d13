/* sd_detect.c - Eq. 9 on a whole image and the heat map (see sd_detect.h). */
#include "sd_detect.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_dataset.h"
#include "sd_draw.h"

int sd_detect_decide(int num_n, int num_p, double delta, double *r)
{
    if (num_n + num_p <= 0) {
        *r = NAN;
        return SD_DETECT_UNDETERMINED;
    }
    *r = (double)num_p / (double)(num_n + num_p);
    return *r >= delta ? SD_DETECT_POSITIVE : SD_DETECT_NEGATIVE;
}

void sd_detect_result_free(sd_detect_result *res)
{
    if (!res)
        return;
    free(res->classes);
    res->classes = NULL;
}

static const sd_task *task_of(const sd_detect_params *p, sd_task *gastric)
{
    if (p->task)
        return p->task;
    sd_task_gastric(gastric);
    return gastric;
}

static int check_params(const sd_detect_params *p, sd_error *err)
{
    if (!p || p->psize < 1 || p->stride < 1 || p->osize < 1 || p->osize > p->psize)
        return sd_error_set(err, SD_EINVAL,
                            "detect: need patch >= 1, stride >= 1, 1 <= input size <= patch");
    if (!(p->std > 0) || !isfinite(p->mean))
        return sd_error_set(err, SD_EINVAL, "detect: bad normalisation (mean %g, std %g)", p->mean,
                            p->std);
    if (!(p->delta >= 0 && p->delta <= 1))
        return sd_error_set(err, SD_EINVAL, "detect: delta %g not in [0,1]", p->delta);
    return 0;
}

int sd_detect_image(const uint16_t *pix, int w, int h, const sd_detect_params *p,
                    sd_patch_classify_fn classify, void *ctx, sd_detect_result *res, sd_error *err)
{
    memset(res, 0, sizeof *res);
    res->r = NAN;
    res->decision = SD_DETECT_UNDETERMINED;
    int rc = check_params(p, err);
    if (rc)
        return rc;
    if (!pix || !classify)
        return sd_error_set(err, SD_EINVAL, "detect: no image or no classifier");
    sd_task gastric;
    const sd_task *t = task_of(p, &gastric);
    int gh = sd_patch_grid_dim(h, p->psize, p->stride),
        gw = sd_patch_grid_dim(w, p->psize, p->stride);
    if (gh == 0 || gw == 0)
        return sd_error_set(err, SD_EINVAL, "detect: a %dx%d image is smaller than one %dx%d patch",
                            w, h, p->psize, p->psize);
    int total = gh * gw, batch = p->batch > 0 ? p->batch : 256;
    if (batch > total)
        batch = total;
    size_t osz = (size_t)p->osize * (size_t)p->osize;
    res->classes = malloc((size_t)total * sizeof *res->classes);
    sd_real *buf = malloc((size_t)batch * osz * sizeof *buf);
    int32_t *ys = malloc((size_t)batch * sizeof *ys), *xs = malloc((size_t)batch * sizeof *xs);
    if (!res->classes || !buf || !ys || !xs) {
        rc = sd_error_set(err, SD_ENOMEM, "detect: out of memory");
        goto out;
    }
    res->gh = gh;
    res->gw = gw;
    for (int first = 0; first < total; first += batch) {
        int n = total - first < batch ? total - first : batch;
        for (int k = 0; k < n; k++) {
            ys[k] = (first + k) / gw * p->stride;
            xs[k] = (first + k) % gw * p->stride;
        }
        rc =
            sd_patch_cut_image(pix, w, h, ys, xs, n, p->psize, p->osize, p->mean, p->std, buf, err);
        if (rc)
            goto out;
        int *cls = res->classes + first;
        for (int k = 0; k < n; k++)
            cls[k] = -1;
        rc = classify(ctx, buf, n, cls);
        if (rc) {
            if (err && !err->msg[0])
                sd_error_set(err, rc, "detect: the patch classifier failed (%s)",
                             sd_status_name(rc));
            goto out;
        }
        for (int k = 0; k < n; k++) {
            if (cls[k] < 0 || cls[k] >= t->classes) {
                rc = sd_error_set(err, SD_EINVAL,
                                  "detect: classifier returned class %d for patch %d (0..%d)",
                                  cls[k], first + k, t->classes - 1);
                goto out;
            }
            res->num[cls[k]]++;
        }
    }
    res->decision = sd_task_decide(t, res->num, p->delta, &res->r);
out:
    free(buf);
    free(ys);
    free(xs);
    if (rc) {
        sd_detect_result_free(res);
        res->gh = res->gw = 0;
    }
    return rc;
}

/* ---- heat map ---- */

#define COLOR_N      0x20C040u
#define COLOR_P      0xF03030u
#define COLOR_TEXT   0xFFFFFFu
#define COLOR_PANEL  0x202020u
#define COLOR_BANNER 0xFFC000u

/* Tint of patch class cls: the region outside none, then N green, P red
 * (or the first, second image class), then more colours. */
static uint32_t class_colour(const sd_task *t, int cls)
{
    static const uint32_t more[] = {COLOR_N,   COLOR_P,   0x3080F0u, 0xF0C020u, 0xC040F0u,
                                    0x20D0D0u, 0xF08020u, 0x8080FFu, 0xA0A0A0u, 0x60A060u};
    int l = sd_task_label_of_class(t, cls);
    return l >= 0 && l < (int)(sizeof more / sizeof more[0]) ? more[l] : 0x808080u;
}

/* The legend of a declared task: one entry per class (wrapping), then r
 * and the decision in the task's own names. */
static void task_legend(sd_canvas *c, const sd_task *t, const sd_detect_params *p,
                        const sd_detect_result *res, int ty, int scale)
{
    int pad = 6 * scale, line = SD_FONT_LINE * scale, box = SD_FONT_H * scale, tx = pad;
    char buf[256];
    for (int k = 0; k < t->classes; k++) {
        int outside = k < t->outside;
        snprintf(buf, sizeof buf, "%s: %d", t->cls[k], res->num[k]);
        int wdt = box + 3 * scale + sd_text_width(buf, scale) + 4 * SD_FONT_ADVANCE * scale;
        if (tx > pad && tx + wdt > c->w) {
            tx = pad;
            ty += line;
        }
        sd_draw_rect(c, tx, ty, box, box, outside ? 0x808080u : class_colour(t, k), !outside);
        tx += box + 3 * scale;
        tx += sd_draw_text(c, tx, ty, buf, COLOR_TEXT, scale) + 4 * SD_FONT_ADVANCE * scale;
    }
    ty += line;
    int d = res->decision;
    if (d < 0)
        snprintf(buf, sizeof buf, "r = n/a -> UNDETERMINED (no patch voted for a class)");
    else if (t->rule == SD_RULE_RATIO)
        snprintf(buf, sizeof buf, "r = %.10s/(%.10s+%.10s) = %.3f  delta = %.2f -> %s", t->label[1],
                 t->label[0], t->label[1], res->r, p->delta, t->label[d]);
    else
        snprintf(buf, sizeof buf, "majority: %.3f of the votes -> %s", res->r, t->label[d]);
    sd_draw_text(c, pad, ty + line / 2, buf, d < 0 ? 0xFFFF80u : 0xFFFFFFu, scale);
}

int sd_detect_heatmap_png(const char *path, const uint16_t *pix, int w, int h,
                          const sd_detect_params *p, const sd_detect_result *res, const char *title,
                          int synthetic, int max_side, sd_error *err)
{
    sd_canvas c;
    int rc = sd_detect_heatmap_canvas(&c, pix, w, h, p, res, title, synthetic, max_side, err);
    if (rc)
        return rc;
    rc = sd_canvas_write_png(&c, path, err);
    sd_canvas_free(&c);
    return rc;
}

int sd_detect_heatmap_canvas(sd_canvas *out, const uint16_t *pix, int w, int h,
                             const sd_detect_params *p, const sd_detect_result *res,
                             const char *title, int synthetic, int max_side, sd_error *err)
{
    memset(out, 0, sizeof *out);
    if (!pix || !p || !res || !res->classes || w < 1 || h < 1)
        return sd_error_set(err, SD_EINVAL, "heat map: missing image or result");
    sd_task gastric;
    const sd_task *t = task_of(p, &gastric);
    if (max_side <= 0)
        max_side = 1024;
    double f = (double)max_side / (w > h ? w : h);
    if (f > 1)
        f = 1;
    int ow = (int)floor(w * f + 0.5), oh = (int)floor(h * f + 0.5);
    if (ow < 1)
        ow = 1;
    if (oh < 1)
        oh = 1;
    int scale = ow >= 600 ? 2 : 1;
    int line = SD_FONT_LINE * scale, pad = 6 * scale;
    int title_h = title ? line + pad : 0;
    int panel_h = (sd_task_is_gastric(t) ? 3 : 3 + t->classes / 3) * line + 2 * pad;
    int cw = ow < 360 * scale ? 360 * scale : ow;
    sd_canvas c;
    int rc = sd_canvas_init(&c, cw, title_h + oh + panel_h, COLOR_PANEL, err);
    if (rc)
        return rc;
    /* gray image, box-filtered down to ow x oh */
    uint8_t *g = malloc((size_t)ow * (size_t)oh);
    if (!g) {
        sd_canvas_free(&c);
        return sd_error_set(err, SD_ENOMEM, "heat map: out of memory");
    }
    for (int y = 0; y < oh; y++) {
        int y0 = (int)((double)y * h / oh), y1 = (int)((double)(y + 1) * h / oh);
        if (y1 <= y0)
            y1 = y0 + 1;
        for (int x = 0; x < ow; x++) {
            int x0 = (int)((double)x * w / ow), x1 = (int)((double)(x + 1) * w / ow);
            if (x1 <= x0)
                x1 = x0 + 1;
            double acc = 0;
            for (int yy = y0; yy < y1 && yy < h; yy++)
                for (int xx = x0; xx < x1 && xx < w; xx++)
                    acc += pix[(size_t)yy * w + xx];
            acc /= (double)(y1 - y0) * (x1 - x0);
            g[(size_t)y * ow + x] = (uint8_t)(acc / 257.0 + 0.5);
        }
    }
    int ix = (cw - ow) / 2, iy = title_h;
    sd_draw_gray(&c, ix, iy, g, ow, oh, 1);
    free(g);
    /* Patches overlap; tint each one's central stride x stride block, which
     * tiles the covered area exactly once. */
    double sx = (double)ow / w, sy = (double)oh / h;
    int half = (p->psize - p->stride) / 2;
    for (int gy = 0; gy < res->gh; gy++)
        for (int gx = 0; gx < res->gw; gx++) {
            int cls = res->classes[gy * res->gw + gx];
            if (cls < t->outside || cls >= t->classes)
                continue;
            int y0 = gy * p->stride + half, x0 = gx * p->stride + half;
            int a = ix + (int)floor(x0 * sx), b = iy + (int)floor(y0 * sy);
            int a1 = ix + (int)floor((x0 + p->stride) * sx),
                b1 = iy + (int)floor((y0 + p->stride) * sy);
            sd_draw_rect_blend(&c, a, b, a1 - a, b1 - b, class_colour(t, cls), 0.38);
        }
    if (synthetic)
        sd_draw_text(&c, ix + pad, iy + pad, "SYNTHETIC", COLOR_BANNER, 2 * scale);
    if (title)
        sd_draw_text(&c, pad, pad / 2 + 1, title, COLOR_TEXT, scale);
    /* legend and result */
    int ty = iy + oh + pad, tx = pad, box = SD_FONT_H * scale;
    if (!sd_task_is_gastric(t)) {
        task_legend(&c, t, p, res, ty, scale);
        *out = c;
        return 0;
    }
    sd_draw_rect(&c, tx, ty, box, box, 0x808080u, 0);
    tx += box + 3 * scale;
    char buf[256];
    snprintf(buf, sizeof buf, "I outside stomach: %d", res->num[0]);
    tx += sd_draw_text(&c, tx, ty, buf, COLOR_TEXT, scale) + 4 * SD_FONT_ADVANCE * scale;
    sd_draw_rect(&c, tx, ty, box, box, COLOR_N, 1);
    tx += box + 3 * scale;
    snprintf(buf, sizeof buf, "N non-gastritis: %d", res->num[1]);
    tx += sd_draw_text(&c, tx, ty, buf, COLOR_TEXT, scale) + 4 * SD_FONT_ADVANCE * scale;
    if (tx + box + sd_text_width("P gastritis: 0000", scale) > cw) {
        tx = pad;
        ty += line;
    }
    sd_draw_rect(&c, tx, ty, box, box, COLOR_P, 1);
    tx += box + 3 * scale;
    snprintf(buf, sizeof buf, "P gastritis: %d", res->num[2]);
    sd_draw_text(&c, tx, ty, buf, COLOR_TEXT, scale);
    ty += line;
    const char *dec = res->decision == SD_DETECT_POSITIVE   ? "GASTRITIS"
                      : res->decision == SD_DETECT_NEGATIVE ? "NON-GASTRITIS"
                                                            : "UNDETERMINED (no N or P patch)";
    if (res->decision == SD_DETECT_UNDETERMINED)
        snprintf(buf, sizeof buf, "r = n/a   delta = %.2f   -> %s", p->delta, dec);
    else
        snprintf(buf, sizeof buf, "r = P/(N+P) = %.3f   delta = %.2f   -> %s", res->r, p->delta,
                 dec);
    sd_draw_text(&c, pad, ty + line / 2, buf,
                 res->decision == SD_DETECT_POSITIVE   ? 0xFF8080u
                 : res->decision == SD_DETECT_NEGATIVE ? 0x80FF80u
                                                       : 0xFFFF80u,
                 scale);
    *out = c;
    return 0;
}
