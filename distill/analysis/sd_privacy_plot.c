/*
 * sd_privacy_plot.c - the privacy audit's picture (sd_privacy_picture_png):
 * each shown synthetic image next to its nearest training samples by pixel
 * distance and by SSIM, with the figures and the verdict colour
 * (docs/privacy.md).  Drawing primitives are sd_draw.h's.
 */
#include "sd_privacy.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_draw.h"

/* ---------------------------------------------------------------- picture */

#define P_BG   0xFFFFFFu
#define P_TEXT 0x000000u
#define P_GREY 0x606060u

static uint32_t verdict_color(sd_privacy_verdict v)
{
    return v == SD_PRIVACY_BLOCK ? 0xC62828u : v == SD_PRIVACY_WARN ? 0xD97706u : 0x1B7F3Bu;
}

/* first channel of an image, stretched from its own range to 0..255 */
static void to_gray(const float *x, int h, int w, uint8_t *g)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int p = 0; p < h * w; p++)
        if (isfinite(x[p])) {
            lo = fmin(lo, x[p]);
            hi = fmax(hi, x[p]);
        }
    double sc = hi > lo ? 255.0 / (hi - lo) : 0;
    for (int p = 0; p < h * w; p++)
        g[p] = isfinite(x[p]) ? (uint8_t)lround((x[p] - lo) * sc) : 0;
}

static const char *cls(const char *const *names, int k)
{
    static char buf[16];
    if (names && k >= 0)
        return names[k];
    snprintf(buf, sizeof buf, "%d", k);
    return buf;
}

typedef struct order_item {
    double key;
    size_t i;
} order_item;

static int cmp_order(const void *a, const void *b)
{
    const order_item *x = a, *y = b;
    if (x->key != y->key)
        return (x->key > y->key) - (x->key < y->key);
    return (x->i > y->i) - (x->i < y->i);
}

int sd_privacy_picture_png(const char *path, const sd_privacy_report *r, const float *images,
                           const char *const *class_names, int synthetic, int max_shown,
                           sd_error *err)
{
    if (!r->n_images || !r->images)
        return sd_error_set(err, SD_EINVAL, "privacy picture: empty report");
    if (max_shown <= 0)
        max_shown = 120;
    size_t n = r->n_images, shown = n < (size_t)max_shown ? n : (size_t)max_shown;
    int h = r->h, w = r->w;
    size_t D = (size_t)r->c * (size_t)h * (size_t)w;
    /* the images to show: all in order, or the most similar ones */
    order_item *ord = malloc(n * sizeof *ord);
    uint8_t *g = malloc((size_t)h * (size_t)w);
    if (!ord || !g) {
        free(ord);
        free(g);
        return sd_error_set(err, SD_ENOMEM, "privacy picture: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const sd_privacy_image *im = &r->images[i];
        ord[i].i = i;
        ord[i].key = shown < n ? fmin(im->pixel_pct, im->ssim_pct) - (double)im->flag : 0;
    }
    if (shown < n)
        qsort(ord, n, sizeof *ord, cmp_order);
    int zoom = w >= 96 ? 1 : (96 + w - 1) / w;
    int tile_w = w * zoom, tile_h = h * zoom, pad = 8;
    int col_w = tile_w > 23 * SD_FONT_ADVANCE ? tile_w : 23 * SD_FONT_ADVANCE;
    int cap_lines = 5;
    int group_w = 3 * col_w + 4 * pad,
        group_h = SD_FONT_LINE + 4 + tile_h + 6 + cap_lines * SD_FONT_LINE + 2 * pad;
    int groups_per_row = 3;
    if ((size_t)groups_per_row > shown)
        groups_per_row = (int)shown;
    int rows = (int)((shown + (size_t)groups_per_row - 1) / (size_t)groups_per_row);

    char title[200], info[3][400];
    snprintf(title, sizeof title, "%sPRIVACY AUDIT: %s", synthetic ? "SYNTHETIC DATA - " : "",
             r->verdict == SD_PRIVACY_BLOCK  ? "BLOCK"
             : r->verdict == SD_PRIVACY_WARN ? "WARN"
                                             : "PASS");
    if (r->membership_done)
        snprintf(info[0], sizeof info[0],
                 "membership inference (loss threshold, %lld members v %lld held-out): AUC "
                 "%.3f (0.5 = no leakage); mean loss: members %.3f, held-out %.3f",
                 (long long)r->members, (long long)r->nonmembers, r->membership_auc, r->member_loss,
                 r->nonmember_loss);
    else
        snprintf(info[0], sizeof info[0], "membership inference: not measured");
    snprintf(info[1], sizeof info[1],
             "held-out samples' nearest training distance: 1%% %.3f  5%% %.3f  25%% %.3f  50%% "
             "%.3f | best SSIM: top 1%% %.3f  5%% %.3f  25%% %.3f  50%% %.3f",
             r->heldout_distance_q[0], r->heldout_distance_q[1], r->heldout_distance_q[2],
             r->heldout_distance_q[3], r->heldout_ssim_q[0], r->heldout_ssim_q[1],
             r->heldout_ssim_q[2], r->heldout_ssim_q[3]);
    snprintf(info[2], sizeof info[2],
             "searched %lld of %lld training samples, %lld held-out; \"held-out closer/higher\" "
             "= share of unseen samples as similar to training (0%% = red flag); frames: red "
             "block, orange warn",
             (long long)r->train_searched, (long long)r->train_count, (long long)r->heldout_used);
    char shown_note[120] = "";
    if (shown < n)
        snprintf(shown_note, sizeof shown_note,
                 "showing the %zu of %zu images most similar to training data", shown, n);
    int header_h = 2 * SD_FONT_LINE + 12 + 5 * SD_FONT_LINE + 8;
    int cw = groups_per_row * group_w + pad, chh = header_h + rows * group_h + pad;
    int text_w = sd_text_width(title, 2) + 2 * pad;
    for (int k = 0; k < 3; k++)
        if (sd_text_width(info[k], 1) + 2 * pad > text_w)
            text_w = sd_text_width(info[k], 1) + 2 * pad;
    if (sd_text_width(r->reason, 1) + 2 * pad > text_w)
        text_w = sd_text_width(r->reason, 1) + 2 * pad;
    if (text_w > cw)
        cw = text_w;
    sd_canvas cv;
    int rc = sd_canvas_init(&cv, cw, chh, P_BG, err);
    if (rc) {
        free(ord);
        free(g);
        return rc;
    }
    uint32_t vc = verdict_color(r->verdict);
    sd_draw_rect(&cv, 0, 0, cw, 2 * SD_FONT_LINE + 8, vc, 1);
    sd_draw_text(&cv, pad, 6, title, P_BG, 2);
    int y = 2 * SD_FONT_LINE + 14;
    sd_draw_text(&cv, pad, y, r->reason, vc, 1);
    y += SD_FONT_LINE + 2;
    for (int k = 0; k < 3; k++, y += SD_FONT_LINE)
        sd_draw_text(&cv, pad, y, info[k], P_TEXT, 1);
    sd_draw_text(&cv, pad, y, shown_note, P_GREY, 1);

    for (size_t s = 0; s < shown; s++) {
        size_t i = ord[s].i;
        const sd_privacy_image *im = &r->images[i];
        int gx = pad + (int)(s % (size_t)groups_per_row) * group_w,
            gy = header_h + (int)(s / (size_t)groups_per_row) * group_h;
        uint32_t fc = im->flag == SD_PRIVACY_PASS ? 0xC0C0C0u : verdict_color(im->flag);
        sd_draw_rect(&cv, gx, gy, group_w - pad, group_h - pad, fc, 0);
        if (im->flag != SD_PRIVACY_PASS)
            sd_draw_rect(&cv, gx + 1, gy + 1, group_w - pad - 2, group_h - pad - 2, fc, 0);
        char head[64];
        snprintf(head, sizeof head, "synthetic image %zu%s", i,
                 im->flag == SD_PRIVACY_BLOCK  ? "  BLOCK"
                 : im->flag == SD_PRIVACY_WARN ? "  WARN"
                                               : "");
        sd_draw_text(&cv, gx + pad, gy + 4, head, im->flag == SD_PRIVACY_PASS ? P_TEXT : fc, 1);
        const float *tiles[3] = {images + i * D, r->pixel_nearest + i * D, r->ssim_nearest + i * D};
        char cap[3][200];
        snprintf(cap[0], sizeof cap[0], "synthetic #%zu", i);
        snprintf(cap[1], sizeof cap[1],
                 "nearest by pixel\ndistance %.4f\nheld-out closer %.1f%%\nSSIM %.3f\n"
                 "train #%lld (%s)",
                 im->pixel_distance, 100.0 * im->pixel_pct, im->pixel_ssim,
                 (long long)im->pixel_index, cls(class_names, im->pixel_label));
        snprintf(cap[2], sizeof cap[2],
                 "nearest by SSIM\nSSIM %.3f\nheld-out higher %.1f%%\ndistance %.4f\n"
                 "train #%lld (%s)",
                 im->ssim, 100.0 * im->ssim_pct, im->ssim_distance, (long long)im->ssim_index,
                 cls(class_names, im->ssim_label));
        for (int k = 0; k < 3; k++) {
            int tx = gx + pad + k * (col_w + pad), ty = gy + SD_FONT_LINE + 8;
            int ix = tx + (col_w - tile_w) / 2;
            to_gray(tiles[k], h, w, g);
            sd_draw_gray(&cv, ix, ty, g, w, h, zoom);
            sd_draw_rect(&cv, ix - 1, ty - 1, tile_w + 2, tile_h + 2, 0x808080u, 0);
            sd_draw_text(&cv, tx, ty + tile_h + 5, cap[k], P_TEXT, 1);
        }
    }
    free(ord);
    free(g);
    rc = sd_canvas_write_png(&cv, path, err);
    sd_canvas_free(&cv);
    return rc;
}
