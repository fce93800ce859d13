/*
 * test_metrics.c - Sen, Spe, HM (Eqs. 10-12), the ROC curve, AUC and the
 * best delta against values worked out by hand, including ties and
 * undetermined images; and the plots (files written, sizes right).
 */
#include <math.h>
#include <string.h>

#include "../sd_test.h"
#include "data_testutil.h"
#include "sd_metrics.h"
#include "sd_plot.h"
#include "sd_png.h"

#define EQ(a, b) (fabs((a) - (b)) < 1e-12)

/* gastritis r: 0.8 0.5 0.3; non-gastritis r: 0.6 0.2 0.1 0.0 */
static const double R7[7] = {0.8, 0.5, 0.3, 0.6, 0.2, 0.1, 0.0};
static const int L7[7] = {1, 1, 1, 0, 0, 0, 0};

static void test_confusion(void)
{
    sd_confusion c;
    sd_confusion_at(R7, L7, 7, 0.4, &c);
    CHECK(c.tp == 2 && c.fn == 1 && c.fp == 1 && c.tn == 3);
    double sen = sd_sensitivity(&c), spe = sd_specificity(&c);
    CHECK(EQ(sen, 2.0 / 3) && EQ(spe, 0.75));
    CHECK(EQ(sd_harmonic_mean(sen, spe), 12.0 / 17));
    /* r exactly at delta is gastritis (>=) */
    sd_confusion_at(R7, L7, 7, 0.5, &c);
    CHECK(c.tp == 2);
    CHECK(sd_harmonic_mean(0, 0) == 0);
    CHECK(isnan(sd_harmonic_mean(NAN, 0.5)));
    sd_confusion empty = {0};
    CHECK(isnan(sd_sensitivity(&empty)) && isnan(sd_specificity(&empty)));

    /* undetermined images are errors: a positive one is a FN, a negative
     * one a FP, at every delta */
    const double r[4] = {0.9, NAN, 0.1, NAN};
    const int l[4] = {1, 1, 0, 0};
    sd_confusion_at(r, l, 4, 0.4, &c);
    CHECK(c.tp == 1 && c.fn == 1 && c.tn == 1 && c.fp == 1);
    CHECK(c.und_pos == 1 && c.und_neg == 1);
    CHECK(EQ(sd_sensitivity(&c), 0.5) && EQ(sd_specificity(&c), 0.5));
}

static void test_roc(void)
{
    sd_error e = {0};
    sd_roc roc;
    CHECK(sd_roc_compute(R7, L7, 7, &roc, &e) == 0);
    /* pairs (pos > neg): 0.8 beats 4, 0.5 beats 3, 0.3 beats 3 -> 10/12 */
    CHECK(EQ(roc.auc, 10.0 / 12));
    CHECK(roc.positives == 3 && roc.negatives == 4);
    /* points: (0,0) then one per distinct score in decreasing order */
    CHECK(roc.n == 8);
    static const double fx[8] = {0, 0, 0.25, 0.25, 0.25, 0.5, 0.75, 1};
    static const double fy[8] = {0, 1.0 / 3, 1.0 / 3, 2.0 / 3, 1, 1, 1, 1};
    int ok = 1;
    for (int i = 0; i < 8 && i < roc.n; i++)
        ok &= EQ(roc.pt[i].fpr, fx[i]) && EQ(roc.pt[i].tpr, fy[i]);
    CHECK(ok);
    CHECK(isinf(roc.pt[0].delta) && EQ(roc.pt[1].delta, 0.8) && EQ(roc.pt[7].delta, 0.0));
    sd_roc_free(&roc);
    sd_roc_free(&roc);

    /* a tie between a positive and a negative counts half */
    const double rt[4] = {0.7, 0.2, 0.2, 0.1};
    const int lt[4] = {1, 1, 0, 0};
    CHECK(sd_roc_compute(rt, lt, 4, &roc, &e) == 0);
    /* 0.7 beats both (2), 0.2 ties one (0.5) and beats one (1) -> 3.5/4 */
    CHECK(EQ(roc.auc, 3.5 / 4));
    CHECK(roc.n == 4); /* (0,0), 0.7, 0.2 (one step for the tie), 0.1 */
    sd_roc_free(&roc);

    /* undetermined: worst-case ranks.  pos {0.9, NaN}, neg {0.2, NaN}:
     * ranking NaN-neg(+inf) > 0.9 > 0.2 > NaN-pos(-inf).
     * pairs: 0.9 beats 0.2 only (1), NaN-pos beats nothing -> 1/4 */
    const double ru[4] = {0.9, NAN, 0.2, NAN};
    const int lu[4] = {1, 1, 0, 0};
    CHECK(sd_roc_compute(ru, lu, 4, &roc, &e) == 0);
    CHECK(EQ(roc.auc, 0.25));
    CHECK(roc.n == 5 && EQ(roc.pt[1].fpr, 0.5) && EQ(roc.pt[1].tpr, 0) && isinf(roc.pt[1].delta) &&
          roc.pt[1].delta > 0);
    CHECK(EQ(roc.pt[4].fpr, 1) && EQ(roc.pt[4].tpr, 1));
    sd_roc_free(&roc);

    /* perfect and inverted separations */
    const double rp[4] = {0.9, 0.8, 0.2, 0.1};
    CHECK(sd_roc_compute(rp, lt, 4, &roc, &e) == 0 && EQ(roc.auc, 1));
    sd_roc_free(&roc);
    const int li[4] = {0, 0, 1, 1};
    CHECK(sd_roc_compute(rp, li, 4, &roc, &e) == 0 && EQ(roc.auc, 0));
    sd_roc_free(&roc);

    /* one class only: refused */
    const int l1[2] = {1, 1};
    CHECK(sd_roc_compute(rp, l1, 2, &roc, &e) == SD_EINVAL);
    CHECK(strstr(e.msg, "both labels") != NULL);
}

static void test_best_delta(void)
{
    sd_error e = {0};
    double d = 0, hm = 0;
    /* by hand: delta 0.8 -> HM 1/2; 0.6 -> 6/13; 0.5 -> 12/17; 0.3 -> 6/7;
     * 0.2 -> 2/3; 0.1 -> Spe 1/4, HM 2/5; 0.0 -> Spe 0, HM 0 */
    CHECK(sd_best_delta(R7, L7, 7, &d, &hm, &e) == 0);
    CHECK(EQ(d, 0.3) && EQ(hm, 6.0 / 7));
    /* ties: {pos 0.9, neg 0.5, pos 0.45, neg 0.1}: 0.9 -> Sen 1/2 Spe 1
     * HM 2/3; 0.45 -> Sen 1 Spe 1/2 HM 2/3; 0.5 -> 1/2,1/2 -> 1/2.
     * 0.45 and 0.9 tie; 0.45 is closer to 0.4 */
    const double r[4] = {0.9, 0.5, 0.45, 0.1};
    const int l[4] = {1, 0, 1, 0};
    CHECK(sd_best_delta(r, l, 4, &d, &hm, &e) == 0);
    CHECK(EQ(d, 0.45) && EQ(hm, 2.0 / 3));
    const double rn[2] = {NAN, NAN};
    CHECK(sd_best_delta(rn, l, 2, &d, &hm, &e) == SD_EINVAL);
}

static void test_plots(void)
{
    sd_error e = {0};
    char path[512];
    sd_png_info info;
    sd_roc roc;
    CHECK(sd_roc_compute(R7, L7, 7, &roc, &e) == 0);
    tu_path(path, sizeof path, "roc.png");
    CHECK(sd_plot_roc_png(path, &roc, 0.4, "ROC (test)", 1, &e) == 0);
    CHECK(sd_png_read_info(path, &info, &e) == 0 && info.channels == 3 && info.width == 520);
    sd_roc_free(&roc);

    double x[50], a[50], b[50];
    for (int i = 0; i < 50; i++) {
        x[i] = i;
        a[i] = 2.0 * exp(-i / 10.0);
        b[i] = i % 7 == 3 ? NAN : 1.0 - exp(-i / 15.0);
    }
    const double *ys[2] = {a, b};
    const char *names[2] = {"loss", "accuracy"};
    tu_path(path, sizeof path, "lines.png");
    CHECK(sd_plot_lines_png(path, "training", "epoch", "value", x, 50, ys, names, 2, 0, &e) == 0);
    CHECK(sd_png_read_info(path, &info, &e) == 0 && info.width == 800 && info.height == 500);
    tu_path(path, sizeof path, "lines_log.png");
    CHECK(sd_plot_lines_png(path, NULL, "epoch", "loss", x, 50, ys, names, 1, 1, &e) == 0);
    const double one = 1.0;
    const double *y1[1] = {&one};
    tu_path(path, sizeof path, "single.png");
    CHECK(sd_plot_lines_png(path, NULL, NULL, NULL, &one, 1, y1, NULL, 1, 0, &e) == 0);
    CHECK(sd_plot_lines_png(path, NULL, NULL, NULL, x, 0, ys, NULL, 1, 0, &e) == SD_EINVAL);

    sd_real tiles[3 * 8 * 8];
    for (int i = 0; i < 3 * 64; i++)
        tiles[i] = (sd_real)sin(i * 0.3);
    const char *caps[3] = {"I .12 N .80 P .08\nlr 0.0213", "I .90 N .05 P .05", NULL};
    tu_path(path, sizeof path, "grid.png");
    CHECK(sd_plot_image_grid_png(path, tiles, 3, 8, 8, 3, 0, caps, "distilled", &e) == 0);
    CHECK(sd_png_read_info(path, &info, &e) == 0 && info.channels == 3 && info.width > 3 * 128);
}

int main(void)
{
    tu_scratch("metrics");
    test_confusion();
    test_roc();
    test_best_delta();
    test_plots();
    return sd_test_finish();
}
