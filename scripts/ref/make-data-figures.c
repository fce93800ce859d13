/*
 * make-data-figures.c - the pictures in docs/data.md (docs/img/synth-*.png,
 * docs/img/heatmap-example.png), made with the engine's own generator and
 * drawing code.  Not part of the build; compile by hand against a build tree:
 *
 *   cc -std=c11 -O2 -D_DEFAULT_SOURCE -Idistill/engine -Idistill/data -Idistill/analysis scripts/ref/make-data-figures.c \
 *      BUILD/distill/libsldd_distill.a -lopenblas -lpng -lz -lcrypto -lpthread -lm \
 *      -o /tmp/make-data-figures && /tmp/make-data-figures docs/img
 *
 * The heat map uses an ORACLE classifier (each patch's class from the
 * phantom's own mask and label, plus a little deterministic confusion), only
 * to show what the picture looks like; it is not a trained model.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_dataset.h"
#include "sd_detect.h"
#include "sd_plot.h"
#include "sd_synth.h"

static int fail(const sd_error *e)
{
    fprintf(stderr, "make-data-figures: %s\n", e->msg);
    return 1;
}

typedef struct oracle {
    const uint8_t *mask;
    int w, label, psize, stride, gw, next;
} oracle;

/* Classify patch k of the grid (row-major) from the mask: the rule used for
 * training labels, with undecided patches given to the nearer class and
 * about one patch in six flipped between N and P. */
static int oracle_classify(void *ctx, const sd_real *patches, int n, int *out)
{
    (void)patches;
    oracle *o = ctx;
    for (int k = 0; k < n; k++, o->next++) {
        int y0 = o->next / o->gw * o->stride, x0 = o->next % o->gw * o->stride;
        long in = 0;
        for (int y = 0; y < o->psize; y++)
            for (int x = 0; x < o->psize; x++)
                in += o->mask[(size_t)(y0 + y) * o->w + x0 + x] != 0;
        double frac = (double)in / ((double)o->psize * o->psize);
        if (frac < 0.4) {
            out[k] = SD_CLASS_I;
            continue;
        }
        uint64_t h = (uint64_t)o->next * 0x9E3779B97F4A7C15ULL;
        h = (h ^ (h >> 31)) * 0xBF58476D1CE4E5B9ULL;
        int flip = (h ^ (h >> 29)) % 6 == 0;
        out[k] = (o->label ^ flip) ? SD_CLASS_P : SD_CLASS_N;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "docs/img";
    char path[1024];
    sd_error e = {0};

    /* 1. four whole phantoms, 512 px, shown at 192 (area-averaged 8:3) */
    enum { S = 512, T = 192 };
    static uint8_t img[S * S], mask[S * S];
    static sd_real tiles[4 * T * T];
    const char *caps[4] = {"non-gastritis (label 0)\nseed 11", "non-gastritis (label 0)\nseed 14",
                           "gastritis (label 1)\nseed 11", "gastritis (label 1)\nseed 12"};
    const int labels[4] = {0, 0, 1, 1};
    const uint64_t seeds[4] = {11, 14, 11, 12};
    for (int k = 0; k < 4; k++) {
        sd_synth_opts o = {S, S, labels[k], seeds[k]};
        if (sd_synth_generate(&o, img, mask, &e))
            return fail(&e);
        uint16_t *w16 = malloc((size_t)S * S * sizeof *w16);
        for (int i = 0; i < S * S; i++)
            w16[i] = (uint16_t)(img[i] * 257);
        int32_t idx[3] = {0, 0, 0};
        int64_t off = 0;
        int32_t wd = S;
        if (sd_patch_cut(w16, &off, &wd, idx, 1, S, T, 0, 1, tiles + (size_t)k * T * T, &e))
            return fail(&e);
        free(w16);
    }
    snprintf(path, sizeof path, "%s/synth-examples.png", dir);
    if (sd_plot_image_grid_png(path, tiles, 4, T, T, 4, 1, caps, "SYNTHETIC phantoms (512 x 512)",
                               &e))
        return fail(&e);

    /* 2. close-ups: 160x160 pixels of 2048x2048 phantoms, shown 2x */
    enum { B = 2048, C = 128 };
    uint8_t *big = malloc((size_t)B * B), *bm = malloc((size_t)B * B);
    static sd_real crops[4 * C * C];
    const char *ccaps[4] = {"non-gastritis: straight folds,\nfine uniform mucosa", "non-gastritis",
                            "gastritis: tortuous thick folds,\ncoarse nodules", "gastritis"};
    const int cy[4] = {1150, 900, 1150, 900}, cx[4] = {1300, 1200, 1300, 1200};
    for (int k = 0; k < 4; k++) {
        sd_synth_opts o = {B, B, k >= 2, k % 2 ? 14 : 11};
        if (sd_synth_generate(&o, big, bm, &e))
            return fail(&e);
        for (int y = 0; y < C; y++)
            for (int x = 0; x < C; x++)
                crops[(size_t)k * C * C + y * C + x] = big[(size_t)(cy[k] + y) * B + cx[k] + x];
    }
    snprintf(path, sizeof path, "%s/synth-closeup.png", dir);
    if (sd_plot_image_grid_png(path, crops, 4, C, C, 4, 1, ccaps,
                               "SYNTHETIC close-ups (128 px of 2048 x 2048)", &e))
        return fail(&e);

    /* 3. a heat map (oracle classifier) on a 2048 gastritis phantom */
    sd_synth_opts o = {B, B, 1, 12};
    if (sd_synth_generate(&o, big, bm, &e))
        return fail(&e);
    uint16_t *pix = malloc((size_t)B * B * sizeof *pix);
    for (size_t i = 0; i < (size_t)B * B; i++)
        pix[i] = (uint16_t)(big[i] * 257);
    sd_detect_params p = {299, 50, 64, 0.43, 0.12, SD_DETECT_DELTA, 256, NULL};
    oracle orc = {bm, B, 1, 299, 50, sd_patch_grid_dim(B, 299, 50), 0};
    sd_detect_result res;
    if (sd_detect_image(pix, B, B, &p, oracle_classify, &orc, &res, &e))
        return fail(&e);
    snprintf(path, sizeof path, "%s/heatmap-example.png", dir);
    if (sd_detect_heatmap_png(path, pix, B, B, &p, &res,
                              "seed 12, gastritis: ORACLE classes (illustration)", 1, 512, &e))
        return fail(&e);
    sd_detect_result_free(&res);
    free(pix);
    free(big);
    free(bm);
    return 0;
}
