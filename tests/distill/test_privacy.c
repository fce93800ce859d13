/*
 * test_privacy.c - the privacy audit (distill/analysis/sd_privacy.h).
 *
 * Oracles: SSIM and distance identities (identical, affine copy, negative);
 * the GEMM search against a brute-force search with the double-precision
 * pair functions; a copied training sample found at distance ~0, SSIM ~1,
 * percentile 0 and blocking; noise images passing; the loss-threshold AUC of
 * a model that memorised random labels (near 1) and of an untrained one
 * (near 0.5); the whole audit through replay; the policy parser; the
 * picture.  Data are small stripe images made here.  An optional argument
 * names a directory where the pictures are kept.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_testutil.h"
#include "sd_dataview.h"
#include "sd_distill.h"
#include "sd_init.h"
#include "sd_png.h"
#include "sd_privacy.h"
#include "../sd_test.h"

#define SIDE 20

/* ---- data ---- */

static double urand(uint64_t seed, uint32_t stream, uint64_t i)
{
    return ((double)sd_uniform_u32(seed, stream, i) + 0.5) / 4294967296.0;
}

/* Stripes whose orientation depends on the class, random phase, frequency,
 * brightness and contrast, plus noise: held-out samples resemble training
 * samples without copying any. */
static void make_stripes(float *x, int32_t *y, int n, int side, uint64_t seed)
{
    for (int i = 0; i < n; i++) {
        int k = (int)(sd_uniform_u32(seed, 10, (uint64_t)i) % 3);
        double ang = (double)k * 1.0472 + 0.3 * (urand(seed, 11, (uint64_t)i) - 0.5);
        double fr = 0.5 + 0.25 * urand(seed, 12, (uint64_t)i);
        double ph = 6.2832 * urand(seed, 13, (uint64_t)i);
        double br = urand(seed, 14, (uint64_t)i) - 0.5, ct = 0.5 + urand(seed, 15, (uint64_t)i);
        for (int p = 0; p < side * side; p++) {
            double u = p % side, v = p / side;
            double s = sin(fr * (u * cos(ang) + v * sin(ang)) + ph);
            x[(size_t)i * side * side + (size_t)p] =
                (float)(br + ct * s + 0.3 * sd_normal(seed, 16, (uint64_t)i * 10007 + (uint64_t)p));
        }
        y[i] = k;
    }
}

static void make_noise(float *x, int n, size_t d, uint64_t seed)
{
    for (size_t i = 0; i < (size_t)n * d; i++)
        x[i] = (float)sd_normal(seed, 20, i);
}

typedef struct set {
    float *x;
    int32_t *y;
    int n;
    sd_array_data arr;
    sd_data_view view;
} set;

static void set_make(set *s, int n, int side, uint64_t seed, int noise)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->x = malloc((size_t)n * (size_t)side * (size_t)side * sizeof *s->x);
    s->y = malloc((size_t)n * sizeof *s->y);
    if (noise) {
        make_noise(s->x, n, (size_t)side * (size_t)side, seed);
        for (int i = 0; i < n; i++)
            s->y[i] = (int32_t)(sd_uniform_u32(seed, 21, (uint64_t)i) % 3);
    } else {
        make_stripes(s->x, s->y, n, side, seed);
    }
    s->arr = (sd_array_data){
        .x = s->x, .labels = s->y, .count = n, .c = 1, .h = side, .w = side, .classes = 3};
    sd_data_view_array(&s->view, &s->arr);
}

static void set_free(set *s)
{
    sd_array_data_free(&s->arr);
    free(s->x);
    free(s->y);
}

static const char *out_dir;

static void out_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", out_dir, name);
}

/* ---- SSIM and distance identities ---- */

static void test_identities(void)
{
    int n = 28 * 28;
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    int32_t y;
    make_stripes(a, &y, 1, 28, 5);
    /* 28 is not a multiple of 8: the window grid overlaps at the edges */
    CHECKF(fabs(sd_ssim(a, a, 1, 28, 28) - 1.0) < 1e-12, "%.15f", sd_ssim(a, a, 1, 28, 28));
    CHECK(sd_privacy_distance(a, a, (size_t)n) < 1e-12);
    for (int i = 0; i < n; i++)
        b[i] = -a[i];
    double s = sd_ssim(a, b, 1, 28, 28);
    CHECKF(s < 0, "SSIM of an image and its negative %.4f", s);
    CHECKF(fabs(sd_privacy_distance(a, b, (size_t)n) - 2.0) < 1e-9, "%.6f",
           sd_privacy_distance(a, b, (size_t)n));
    /* scale-free: a brightness/contrast change is the same image */
    for (int i = 0; i < n; i++)
        b[i] = 3.0f * a[i] + 1.5f;
    CHECKF(fabs(sd_ssim(a, b, 1, 28, 28) - 1.0) < 1e-6, "%.8f", sd_ssim(a, b, 1, 28, 28));
    CHECK(sd_privacy_distance(a, b, (size_t)n) < 1e-5);
    /* unrelated noise: SSIM near 0, distance near sqrt(2) */
    make_noise(b, 1, (size_t)n, 77);
    s = sd_ssim(a, b, 1, 28, 28);
    CHECKF(fabs(s) < 0.2, "SSIM with noise %.4f", s);
    CHECKF(fabs(sd_privacy_distance(a, b, (size_t)n) - sqrt(2.0)) < 0.15, "%.4f",
           sd_privacy_distance(a, b, (size_t)n));
    /* symmetric, and more noise means lower SSIM */
    CHECK(fabs(sd_ssim(a, b, 1, 28, 28) - sd_ssim(b, a, 1, 28, 28)) < 1e-12);
    float *c = malloc((size_t)n * sizeof *c);
    double prev = 1.0;
    for (int k = 1; k <= 3; k++) {
        for (int i = 0; i < n; i++)
            c[i] = a[i] + 0.3f * (float)k * b[i];
        double sk = sd_ssim(a, c, 1, 28, 28);
        CHECKF(sk < prev, "noise level %d: SSIM %.4f not below %.4f", k, sk, prev);
        prev = sk;
    }
    /* a constant image: SSIM defined, distance 1 */
    for (int i = 0; i < n; i++)
        c[i] = 0.25f;
    CHECK(isfinite(sd_ssim(a, c, 1, 28, 28)));
    CHECK(fabs(sd_privacy_distance(a, c, (size_t)n) - 1.0) < 1e-9);
    CHECK(fabs(sd_ssim(c, c, 1, 28, 28) - 1.0) < 1e-12);
    /* images smaller than a window */
    CHECK(fabs(sd_ssim(a, a, 1, 5, 6) - 1.0) < 1e-12);
    free(a);
    free(b);
    free(c);
}

/* ---- nearest-training search ---- */

static void test_search(sd_backend *be)
{
    set tr, ho;
    set_make(&tr, 600, SIDE, 1, 0);
    set_make(&ho, 200, SIDE, 2, 0);
    size_t D = SIDE * SIDE;
    int n = 5;
    float *img = malloc((size_t)n * D * sizeof *img);
    memcpy(img, tr.x + 123 * D, D * sizeof *img); /* a copy */
    make_noise(img + D, 1, D, 9);                 /* noise */
    for (size_t p = 0; p < D; p++)                /* affine copy */
        img[2 * D + p] = 0.5f * tr.x[7 * D + p] - 0.2f;
    make_stripes(img + 3 * D, &(int32_t){0}, 1, SIDE, 99); /* unseen, like held-out */
    for (size_t p = 0; p < D; p++)                         /* half a copy */
        img[4 * D + p] = 0.5f * (tr.x[300 * D + p] + img[D + p]);
    sd_privacy_config cfg;
    sd_privacy_config_defaults(&cfg);
    cfg.chunk = 128; /* several blocks, the last one partial */
    sd_privacy_report r = {0};
    sd_error err = {0};
    int rc =
        sd_privacy_nearest(&r, img, (size_t)n, 1, SIDE, SIDE, &tr.view, &ho.view, be, &cfg, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc)
        goto out;
    CHECK(r.train_searched == 600 && r.heldout_used == 200 && r.cmp_h == SIDE);
    const sd_privacy_image *im = r.images;
    CHECKF(im[0].pixel_index == 123 && im[0].ssim_index == 123, "%lld %lld",
           (long long)im[0].pixel_index, (long long)im[0].ssim_index);
    CHECKF(im[0].pixel_distance < 1e-6, "%g", im[0].pixel_distance);
    CHECKF(fabs(im[0].ssim - 1) < 1e-9, "%.12f", im[0].ssim);
    CHECK(im[0].pixel_pct == 0 && im[0].ssim_pct == 0);
    CHECK(im[0].pixel_label == tr.y[123]);
    CHECK(!memcmp(r.pixel_nearest, tr.x + 123 * D, D * sizeof(float)));
    CHECK(im[2].pixel_index == 7 && im[2].pixel_distance < 1e-5 && im[2].ssim > 0.9999);
    CHECKF(im[1].pixel_pct > 0.99 && im[1].ssim_pct > 0.99 && im[1].ssim < 0.3,
           "noise: pct %.3f ssim %.3f ssim pct %.3f", im[1].pixel_pct, im[1].ssim, im[1].ssim_pct);
    CHECKF(im[3].pixel_pct > 0.02 && im[3].ssim_pct > 0.02, "unseen stripe: pct %.3f %.3f",
           im[3].pixel_pct, im[3].ssim_pct);
    /* quantiles ordered on the similar side */
    for (int k = 1; k < SD_PRIVACY_NQ; k++) {
        CHECK(r.heldout_distance_q[k] >= r.heldout_distance_q[k - 1]);
        CHECK(r.heldout_ssim_q[k] <= r.heldout_ssim_q[k - 1]);
    }
    CHECK(r.heldout_distance_q[0] > 0.05 && r.heldout_ssim_q[3] > 0.2);
    /* brute force with the double-precision pair functions */
    for (int i = 0; i < n; i++) {
        double bd = INFINITY, bs = -INFINITY;
        int64_t bdi = -1, bsi = -1;
        for (int t = 0; t < tr.n; t++) {
            double d = sd_privacy_distance(img + (size_t)i * D, tr.x + (size_t)t * D, D);
            double s = sd_ssim(img + (size_t)i * D, tr.x + (size_t)t * D, 1, SIDE, SIDE);
            if (d < bd) {
                bd = d;
                bdi = t;
            }
            if (s > bs) {
                bs = s;
                bsi = t;
            }
        }
        CHECKF(fabs(im[i].pixel_distance - bd) < 1e-5 && fabs(im[i].ssim - bs) < 1e-4,
               "image %d: search %lld %.6f / %lld %.6f, brute force %lld %.6f / %lld %.6f", i,
               (long long)im[i].pixel_index, im[i].pixel_distance, (long long)im[i].ssim_index,
               im[i].ssim, (long long)bdi, bd, (long long)bsi, bs);
        CHECK(fabs(im[i].pixel_ssim - sd_ssim(img + (size_t)i * D, tr.x + im[i].pixel_index * D, 1,
                                              SIDE, SIDE)) < 1e-12);
    }
    /* held-out percentiles: the search's own held-out figures, by brute force
     * for a few of them, give the same quantile ordering */
    sd_privacy_policy pol;
    sd_privacy_policy_defaults(&pol);
    sd_privacy_decide(&r, &pol);
    CHECK(r.verdict == SD_PRIVACY_BLOCK);
    CHECK(im[0].flag == SD_PRIVACY_BLOCK && im[2].flag == SD_PRIVACY_BLOCK);
    CHECK(im[1].flag == SD_PRIVACY_PASS && im[3].flag == SD_PRIVACY_PASS);
    CHECKF(strstr(r.reason, "image 0") != NULL, "%s", r.reason);
    char path[512];
    out_path(path, sizeof path, "privacy-block.png");
    static const char *const names[] = {"A", "B", "C"};
    rc = sd_privacy_picture_png(path, &r, img, names, 1, 0, &err);
    CHECKF(rc == 0, "%s", err.msg);
    sd_png_info info;
    CHECK(sd_png_read_info(path, &info, &err) == 0 && info.width > 300 && info.height > 200);
    /* a sampled search is reported as such */
    sd_privacy_report r2 = {0};
    cfg.max_train = 100;
    cfg.max_heldout = 50;
    rc = sd_privacy_nearest(&r2, img, 2, 1, SIDE, SIDE, &tr.view, &ho.view, be, &cfg, &err);
    CHECKF(rc == 0, "%s", err.msg);
    CHECK(r2.train_searched == 100 && r2.train_count == 600 && r2.heldout_used == 50);
    char desc[1024];
    sd_privacy_report_describe(&r2, desc, sizeof desc);
    CHECKF(strstr(desc, "searched 100 of 600") != NULL, "%s", desc);
    sd_privacy_report_free(&r2);
    /* the work bound shrinks the training sample: 2 images + 50 held-out
     * queries x 400 values x 150 samples */
    cfg.max_train = 0;
    cfg.max_work = 52.0 * 400.0 * 150.0;
    rc = sd_privacy_nearest(&r2, img, 2, 1, SIDE, SIDE, &tr.view, &ho.view, be, &cfg, &err);
    CHECKF(rc == 0 && r2.train_searched == 150, "%s searched %lld", err.msg,
           (long long)r2.train_searched);
    CHECK(r2.images[0].pixel_index % 4 == 0); /* indices spread as i * 600 / 150 */
    sd_privacy_report_free(&r2);
    /* no held-out samples: refused with a reason */
    set none = {0};
    set_make(&none, 0, SIDE, 3, 0);
    CHECK(sd_privacy_nearest(&r2, img, 1, 1, SIDE, SIDE, &tr.view, &none.view, be, &cfg, &err) ==
              SD_EINVAL &&
          strstr(err.msg, "held-out"));
    sd_privacy_report_free(&r2);
    set_free(&none);
out:
    sd_privacy_report_free(&r);
    free(img);
    set_free(&tr);
    set_free(&ho);
}

/* images larger than 64 on a side are compared after area averaging */
static void test_large(sd_backend *be)
{
    set tr, ho;
    set_make(&tr, 40, 70, 31, 0);
    set_make(&ho, 20, 70, 32, 0);
    size_t D = 70 * 70;
    float *img = malloc(2 * D * sizeof *img);
    memcpy(img, tr.x + 17 * D, D * sizeof *img);
    make_noise(img + D, 1, D, 33);
    sd_privacy_report r = {0};
    sd_error err = {0};
    int rc = sd_privacy_nearest(&r, img, 2, 1, 70, 70, &tr.view, &ho.view, be, NULL, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK(r.cmp_h == 35 && r.cmp_w == 35);
        CHECK(r.images[0].pixel_index == 17 && r.images[0].pixel_distance < 1e-6 &&
              r.images[0].ssim > 0.999999 && r.images[0].pixel_pct == 0);
        CHECK(r.images[1].pixel_pct > 0.9);
    }
    sd_privacy_report_free(&r);
    free(img);
    set_free(&tr);
    set_free(&ho);
}

/* ---- the search's products go through the backend ---- */

static int (*real_gemm)(sd_backend *, sd_error *, int, int, int, int, int, sd_real, const sd_real *,
                        int, const sd_real *, int, sd_real, sd_real *, int);
static int gemm_calls, gemm_fail;

static int counting_gemm(sd_backend *be, sd_error *err, int ta, int tb, int m, int n, int k,
                         sd_real alpha, const sd_real *a, int lda, const sd_real *b, int ldb,
                         sd_real beta, sd_real *c, int ldc)
{
    gemm_calls++;
    if (gemm_fail)
        return sd_error_set(err, SD_EBACKEND, "gemm refused by the test");
    return real_gemm(be, err, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* The nearest-training search runs its GEMMs with the backend's gemm (so it
 * runs where the backend runs) and reports a failing one; the figures are
 * those of the plain backend, bit for bit, also when the backend's memory is
 * treated as device memory (separate host arrays, uploads and downloads: the
 * path a GPU takes). */
static void test_search_backend(sd_backend *be)
{
    set tr, ho;
    set_make(&tr, 300, SIDE, 41, 0);
    set_make(&ho, 100, SIDE, 42, 0);
    size_t D = SIDE * SIDE;
    float *img = malloc(2 * D * sizeof *img);
    memcpy(img, tr.x + 77 * D, D * sizeof *img);
    make_noise(img + D, 1, D, 43);
    sd_privacy_config cfg;
    sd_privacy_config_defaults(&cfg);
    cfg.chunk = 64;
    sd_privacy_report r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0};
    sd_error err = {0};
    int rc = sd_privacy_nearest(&r1, img, 2, 1, SIDE, SIDE, &tr.view, &ho.view, be, &cfg, &err);
    CHECKF(rc == 0, "%s", err.msg);
    real_gemm = be->gemm;
    be->gemm = counting_gemm;
    gemm_calls = 0;
    rc = sd_privacy_nearest(&r2, img, 2, 1, SIDE, SIDE, &tr.view, &ho.view, be, &cfg, &err);
    CHECKF(rc == 0, "%s", err.msg);
    CHECKF(gemm_calls > 0, "%d backend GEMMs", gemm_calls);
    if (!rc && r1.images && r2.images) {
        CHECK(!memcmp(r1.images, r2.images, 2 * sizeof *r1.images));
        CHECK(!memcmp(r1.heldout_distance_q, r2.heldout_distance_q, sizeof r1.heldout_distance_q));
        CHECK(!memcmp(r1.heldout_ssim_q, r2.heldout_ssim_q, sizeof r1.heldout_ssim_q));
        CHECK(r2.images[0].pixel_index == 77 && r2.images[0].ssim_index == 77);
    }
    be->host_memory = 0;
    rc = sd_privacy_nearest(&r4, img, 2, 1, SIDE, SIDE, &tr.view, &ho.view, be, &cfg, &err);
    be->host_memory = 1;
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc && r1.images && r4.images) {
        CHECK(!memcmp(r1.images, r4.images, 2 * sizeof *r1.images));
        CHECK(!memcmp(r1.heldout_ssim_q, r4.heldout_ssim_q, sizeof r1.heldout_ssim_q));
    }
    gemm_fail = 1;
    rc = sd_privacy_nearest(&r3, img, 2, 1, SIDE, SIDE, &tr.view, &ho.view, be, &cfg, &err);
    CHECKF(rc == SD_EBACKEND && strstr(err.msg, "gemm refused by the test"), "rc %d: %s", rc,
           err.msg);
    gemm_fail = 0;
    be->gemm = real_gemm;
    sd_privacy_report_free(&r1);
    sd_privacy_report_free(&r2);
    sd_privacy_report_free(&r3);
    sd_privacy_report_free(&r4);
    free(img);
    set_free(&tr);
    set_free(&ho);
}

/* ---- membership ---- */

static void test_auc_function(void)
{
    double in[] = {0.1, 0.2, 5.0}, out[] = {0.3, 0.4, 0.0};
    int li[] = {0, 0, 1}, lo[] = {0, 0, 2};
    /* class 0 only (classes 1 and 2 have one side each): perfect separation */
    CHECK(fabs(sd_privacy_loss_auc(in, li, 3, out, lo, 3) - 1.0) < 1e-12);
    CHECK(fabs(sd_privacy_loss_auc(out, li, 2, in, lo, 2) - 0.0) < 1e-12);
    double tie[] = {1, 1};
    CHECK(fabs(sd_privacy_loss_auc(tie, li, 2, tie, lo, 2) - 0.5) < 1e-12);
    CHECK(isnan(sd_privacy_loss_auc(in, li, 2, out, (int[]){1, 1}, 2)));
    /* stratification: within each class no signal, pooled there would be */
    double a[] = {1, 2, 10, 11}, b[] = {2, 1, 11, 10};
    int la[] = {0, 0, 1, 1};
    CHECK(fabs(sd_privacy_loss_auc(a, la, 4, b, la, 4) - 0.5) < 1e-12);
    double c[] = {1, 1, 1, 1}, d[] = {10, 10, 10, 10};
    int l1[] = {0, 0, 0, 0}, l2[] = {0, 1, 1, 1};
    /* class 0: 4 members v 1 non-member, weight 4; class 1 has no member */
    CHECK(fabs(sd_privacy_loss_auc(c, l1, 4, d, l2, 4) - 1.0) < 1e-12);
}

static sd_model *tiny_model(int side, int width, sd_error *err)
{
    sd_model_spec spec;
    memset(&spec, 0, sizeof spec);
    snprintf(spec.arch, sizeof spec.arch, "convnet");
    spec.depth = 1;
    spec.width = width;
    spec.in_c = 1;
    spec.in_h = spec.in_w = side;
    spec.classes = 3;
    sd_model *m = NULL;
    if (sd_model_create(&m, &spec, err))
        return NULL;
    return m;
}

static void test_membership(sd_backend *be)
{
    sd_error err = {0};
    sd_model *m = tiny_model(SIDE, 8, &err);
    CHECKF(m != NULL, "%s", err.msg);
    if (!m)
        return;
    /* random labels on noise: only memorising can fit them */
    set mem, non;
    set_make(&mem, 48, SIDE, 41, 1);
    set_make(&non, 48, SIDE, 42, 1);
    sd_real *theta = malloc(m->n_theta * sizeof *theta), *g = malloc(m->n_theta * sizeof *g);
    float *y = calloc((size_t)mem.n * 3, sizeof *y);
    sd_real *yr = calloc((size_t)mem.n * 3, sizeof *yr);
    sd_exec *ex = NULL;
    int rc = sd_init_theta(m, 7, theta, &err) || sd_exec_create(&ex, m, be, mem.n, 0, &err);
    CHECKF(rc == 0, "%s", err.msg);
    sd_privacy_report r = {0};
    /* untrained: no membership signal (large samples so the check is tight) */
    set a, b;
    set_make(&a, 1000, SIDE, 43, 0);
    set_make(&b, 1000, SIDE, 44, 0);
    rc = sd_privacy_membership(&r, m, be, theta, NULL, &a.view, &b.view, 0, &err);
    CHECKF(rc == 0 && r.membership_done, "%s", err.msg);
    CHECKF(fabs(r.membership_auc - 0.5) < 0.06, "untrained AUC %.4f", r.membership_auc);
    printf("membership AUC, untrained model: %.4f\n", r.membership_auc);
    CHECK(r.members == 1000 && r.nonmembers == 1000);
    /* overfit by full-batch gradient descent */
    for (int i = 0; i < mem.n; i++)
        yr[i * 3 + mem.y[i]] = 1;
    double loss = 0;
    for (int it = 0; it < 200 && !rc; it++) {
        memset(g, 0, m->n_theta * sizeof *g);
        sd_exec_args ar = {theta, NULL, SD_BN_BATCH, SD_LABEL_RAW, mem.x, yr, mem.n};
        rc = sd_exec_loss_grad(ex, &ar, &loss, g, NULL, NULL, &err);
        for (size_t k = 0; k < m->n_theta; k++)
            theta[k] -= (sd_real)0.5 * g[k];
    }
    CHECKF(rc == 0 && loss < 0.05, "training loss %.4f", loss);
    rc = sd_privacy_membership(&r, m, be, theta, NULL, &mem.view, &non.view, 0, &err);
    CHECKF(rc == 0 && r.membership_done, "%s", err.msg);
    CHECKF(r.membership_auc > 0.9, "overfit AUC %.4f", r.membership_auc);
    printf("membership AUC, model that memorised its training set (loss %.4f): %.4f\n", loss,
           r.membership_auc);
    CHECK(r.member_loss < r.nonmember_loss);
    /* the policy turns that into a block */
    sd_privacy_policy pol;
    sd_privacy_policy_defaults(&pol);
    sd_privacy_decide(&r, &pol);
    CHECK(r.verdict == SD_PRIVACY_BLOCK && strstr(r.reason, "membership"));
    sd_privacy_report_free(&r);
    sd_exec_destroy(ex);
    free(theta);
    free(g);
    free(y);
    free(yr);
    set_free(&mem);
    set_free(&non);
    set_free(&a);
    set_free(&b);
    sd_model_destroy(m);
}

/* ---- the whole audit through replay ---- */

static int make_distilled(sd_distilled *d, const float *images, int n, sd_error *err)
{
    memset(d, 0, sizeof *d);
    sd_model *m = tiny_model(SIDE, 8, err);
    if (!m)
        return -1;
    d->spec = m->spec;
    d->seed = 11;
    d->steps = 1;
    d->images_per_step = n;
    d->epochs_inner = 2;
    d->bn_mode = SD_BN_BATCH;
    d->label_param = SD_LABEL_SOFTMAX;
    d->n_bn = m->n_bn;
    size_t D = SIDE * SIDE;
    d->images = malloc((size_t)n * D * sizeof(float));
    d->labels = calloc((size_t)n * 3, sizeof(float));
    d->step_sizes = malloc(2 * sizeof(float));
    d->theta_bn = calloc(m->n_bn + 1, sizeof(float));
    sd_real *th = malloc(m->n_theta * sizeof *th);
    int rc = !d->images || !d->labels || !d->step_sizes || !d->theta_bn || !th;
    if (!rc)
        rc = sd_init_theta(m, d->seed, th, err) ||
             sd_theta_sha256(th, m->n_theta, d->theta0_sha256, err);
    if (!rc) {
        memcpy(d->images, images, (size_t)n * D * sizeof(float));
        for (int i = 0; i < n; i++)
            d->labels[i * 3 + i % 3] = 1;
        d->step_sizes[0] = d->step_sizes[1] = 0.01f;
    }
    free(th);
    sd_model_destroy(m);
    return rc;
}

static void test_audit(sd_backend *be)
{
    set tr, ho;
    set_make(&tr, 600, SIDE, 51, 0);
    set_make(&ho, 300, SIDE, 52, 0);
    size_t D = SIDE * SIDE;
    int n = 6;
    float *img = malloc((size_t)n * D * sizeof *img);
    make_noise(img, n, D, 53);
    sd_distilled d;
    sd_error err = {0};
    CHECKF(make_distilled(&d, img, n, &err) == 0, "%s", err.msg);
    sd_privacy_report r = {0};
    int rc = sd_privacy_audit(&r, &d, be, &tr.view, &ho.view, NULL, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECKF(r.verdict == SD_PRIVACY_PASS, "noise images: %s (%s)",
               sd_privacy_verdict_name(r.verdict), r.reason);
        CHECK(r.membership_done && r.members == 600 && r.nonmembers == 300);
        CHECKF(fabs(r.membership_auc - 0.5) < 0.08, "AUC %.4f", r.membership_auc);
        for (int i = 0; i < n; i++)
            CHECK(r.images[i].flag == SD_PRIVACY_PASS);
        char path[512];
        out_path(path, sizeof path, "privacy-pass.png");
        CHECKF(sd_privacy_picture_png(path, &r, d.images, NULL, 1, 0, &err) == 0, "%s", err.msg);
        /* beyond max_shown the most similar images are kept */
        out_path(path, sizeof path, "privacy-few.png");
        CHECKF(sd_privacy_picture_png(path, &r, d.images, NULL, 1, 2, &err) == 0, "%s", err.msg);
    }
    sd_privacy_report_free(&r);
    /* one copied training sample blocks the release */
    memcpy(d.images + 4 * D, tr.x + 250 * D, D * sizeof(float));
    rc = sd_privacy_audit(&r, &d, be, &tr.view, &ho.view, NULL, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK(r.verdict == SD_PRIVACY_BLOCK && r.images[4].flag == SD_PRIVACY_BLOCK);
        CHECK(r.images[4].pixel_index == 250 && r.images[4].pixel_pct == 0);
        CHECK(r.images[0].flag == SD_PRIVACY_PASS);
    }
    sd_privacy_report_free(&r);
    /* a replay that cannot be rebuilt is an error, not a verdict */
    d.theta0_sha256[0] ^= 1;
    CHECK(sd_privacy_audit(&r, &d, be, &tr.view, &ho.view, NULL, &err) == SD_EHASH);
    sd_privacy_report_free(&r);
    sd_distilled_free(&d);
    free(img);
    set_free(&tr);
    set_free(&ho);
}

/* ---- policy ---- */

static void test_policy(void)
{
    sd_privacy_policy p;
    sd_privacy_policy_defaults(&p);
    sd_error err = {0};
    CHECK(sd_privacy_policy_parse(&p, "block_ssim=0.95,warn_auc=0.65", &err) == 0);
    CHECK(p.block_ssim == 0.95 && p.warn_auc == 0.65 && p.block_auc == 0.80);
    CHECK(sd_privacy_policy_parse(&p, "", &err) == 0);
    sd_privacy_policy before = p;
    CHECK(sd_privacy_policy_parse(&p, "block_ssim=0.5,nonsense=1", &err) == SD_EINVAL &&
          strstr(err.msg, "nonsense"));
    CHECK(!memcmp(&p, &before, sizeof p)); /* nothing applied on error */
    CHECK(sd_privacy_policy_parse(&p, "warn_auc=1.5", &err) == SD_EINVAL);
    CHECK(sd_privacy_policy_parse(&p, "warn_auc", &err) == SD_EINVAL);
    CHECK(sd_privacy_policy_parse(&p, "warn_auc=", &err) == SD_EINVAL);
    CHECK(sd_privacy_policy_parse(&p, "warn_auc=0.6x", &err) == SD_EINVAL);
    char buf[512];
    sd_privacy_policy_describe(&p, buf, sizeof buf);
    CHECK(strstr(buf, "0.95") != NULL);

    /* the decision on hand-made figures */
    sd_privacy_image im[2];
    memset(im, 0, sizeof im);
    im[0].pixel_pct = im[1].pixel_pct = 0.5;
    im[0].ssim_pct = im[1].ssim_pct = 0.5;
    im[0].ssim = im[1].ssim = 0.5;
    sd_privacy_report r;
    memset(&r, 0, sizeof r);
    r.images = im;
    r.n_images = 2;
    r.membership_done = 1;
    r.membership_auc = 0.55;
    sd_privacy_policy_defaults(&p);
    sd_privacy_decide(&r, &p);
    CHECK(r.verdict == SD_PRIVACY_PASS);
    r.membership_auc = 0.65;
    sd_privacy_decide(&r, &p);
    CHECK(r.verdict == SD_PRIVACY_WARN && strstr(r.reason, "membership"));
    r.membership_auc = 0.5;
    im[1].ssim_pct = 0.005; /* structurally closer than 99.5 % of held-out */
    sd_privacy_decide(&r, &p);
    CHECK(r.verdict == SD_PRIVACY_WARN && im[1].flag == SD_PRIVACY_WARN &&
          strstr(r.reason, "image 1"));
    im[0].pixel_pct = 0.0;
    im[0].ssim = 0.85; /* close in pixels but SSIM below the block level: warn */
    sd_privacy_decide(&r, &p);
    CHECK(r.verdict == SD_PRIVACY_WARN && im[0].flag == SD_PRIVACY_WARN);
    im[0].ssim = 0.95;
    sd_privacy_decide(&r, &p);
    CHECK(r.verdict == SD_PRIVACY_BLOCK && im[0].flag == SD_PRIVACY_BLOCK &&
          strstr(r.reason, "image 0"));
    CHECK(!strcmp(sd_privacy_verdict_name(SD_PRIVACY_BLOCK), "block"));
}

int main(int argc, char **argv)
{
    out_dir = argc > 1 ? argv[1] : tu_scratch("privacy");
    sd_backend *be = NULL;
    sd_error err = {0};
    if (sd_backend_cpu_create(&be, 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_identities();
    test_auc_function();
    test_policy();
    test_search(be);
    test_large(be);
    test_search_backend(be);
    test_membership(be);
    test_audit(be);
    sd_backend_destroy(be);
    return sd_test_finish();
}
